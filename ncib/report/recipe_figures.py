"""The sweep's comparison figures: Figs. 2 and 3 and the classifier side of neural collapse
with the sweep's recipes (its objectives) on the same axes, one colour and one ±1 std band over
pairs per recipe (:data:`ncib.report.catalogue.COMPARISON_FIGURES` lists them)."""

from __future__ import annotations

from pathlib import Path

from ncib.report.draw import Curve, Panel, Trajectory, draw_curves, draw_trajectories
from ncib.report.figures import CCA_MEAN, CCA_VAR, FIG3, NC1, Recipes
from ncib.report.series import series

__all__ = ["fig2_by_recipe", "fig3_by_recipe", "fig_nc3_by_recipe"]


def _colors(recipes: Recipes) -> list[str]:
    return [f"C{i % 10}" for i in range(len(recipes))]


def _pairs(recipes: Recipes) -> str:
    counts = sorted({len(runs) for _, runs in recipes})
    return "/".join(map(str, counts)) + (" seed pair" if counts == [1] else " seed pairs")


def fig2_by_recipe(recipes: Recipes, path: Path) -> Path | None:
    """Fig. 2 with the sweep's recipes (its objectives) on the same axes: NC1 (mean of the
    members, raw features) against the variance of the K leading CCA coefficients (held out),
    one path per recipe, bars the std over its pairs; then NC1 and the mean of the K leading
    coefficients over epochs, a curve and a ±1 std band per recipe."""
    colors = _colors(recipes)
    nc1 = [series(runs, NC1, space="raw") for _, runs in recipes]
    trajectories = [
        Trajectory(name, series(runs, CCA_VAR, features="raw"), y, c)
        for (name, runs), y, c in zip(recipes, nc1, colors)
    ]
    panels = [
        Panel(
            "NC1 (raw, mean of members)",
            tuple(Curve(name, y, color=c) for (name, _), y, c in zip(recipes, nc1, colors)),
            log_y=True,
        ),  # fmt: skip
        Panel(
            "mean of the K leading CCA coefficients (raw, held out)",
            tuple(
                Curve(name, series(runs, CCA_MEAN, features="raw"), color=c)
                for (name, runs), c in zip(recipes, colors)
            ),
        ),
    ]
    return draw_trajectories(
        trajectories,
        ("variance of the K leading CCA coefficients", "NC1 = tr(Σ_W Σ_B⁺)/K"),
        panels,
        path,
        "Fig. 2 — variability collapse (NC1) vs linear identifiability, per recipe "
        f"(mean ± std over {_pairs(recipes)})",
    )


def fig3_by_recipe(recipes: Recipes, num_classes: int, path: Path) -> Path | None:
    """Fig. 3's four panels with the sweep's recipes (its objectives) on the same axes: per
    recipe a colour, T_K solid and the raw features dashed, each the mean of the members with
    a ±1 std band over pairs."""
    if not any(series(runs, "etf/equinorm/{space}/{member}", space="tk") for _, runs in recipes):
        return None
    colors = _colors(recipes)
    panels = []
    for i, (title, template, fixed, axis, scale) in enumerate(FIG3):
        curves = tuple(
            Curve(
                f"{name} {kind}",
                series(runs, template, **fixed, **{axis: space}).scaled(scale),
                style,
                c,
                c if space == "tk" else "white",
            )
            for (name, runs), c in zip(recipes, colors)
            for space, kind, style in (("tk", "T_K", "-o"), ("raw", "raw", "--s"))
        )
        target = -1.0 / (num_classes - 1) if num_classes > 1 and "cosine" in title else None
        panels.append(
            Panel(title, curves, None if target is None else (target, "−1/(K−1)"), i in (0, 3))
        )
    return draw_curves(
        panels,
        path,
        "Fig. 3 — simplex ETF inside T_K (solid) vs raw features (dashed), per recipe "
        f"(mean of members, ± std over {_pairs(recipes)})",
    )


NC3_PANELS = (  # title, per-member template, log y
    ("NC3 self-duality (0: W ∝ M)", "nc3/{member}", True),
    ("classifier equinorm (std/mean of row norms)", "classifier/equinorm/{member}", False),
    ("mean cosine between classifier rows", "classifier/cos_mean/{member}", False),
)


def fig_nc3_by_recipe(recipes: Recipes, num_classes: int, path: Path) -> Path | None:
    """The classifier side of neural collapse over epochs for the recipes whose runs recorded
    it (objectives that train a classifier: ce, mse): NC3 and NC2 of the classifier rows, mean
    of the members, a ±1 std band over pairs per recipe. None when no recipe recorded NC3."""
    colors = _colors(recipes)
    having = [(r, c) for r, c in zip(recipes, colors) if series(r[1], "nc3/{member}")]
    if not having:
        return None
    panels = [
        Panel(
            title,
            tuple(Curve(name, series(runs, template), color=c) for (name, runs), c in having),
            (-1.0 / (num_classes - 1), "−1/(K−1)")
            if "cosine" in title and num_classes > 1
            else None,
            log_y=log_y,
        )  # fmt: skip
        for title, template, log_y in NC3_PANELS
    ]
    return draw_curves(
        panels,
        path,
        "The classifier side of neural collapse (docs/math.md §6a), per recipe that trains a "
        f"classifier (mean of members, ± std over {_pairs([h[0] for h in having])})",
    )
