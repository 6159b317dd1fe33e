"""Every name ncib logs or records, defined once: key template, meaning, owner, shape.

The definitions live in :mod:`ncib.metrics.vocabulary` (members, axes, groups, :class:`Metric`)
and :mod:`ncib.metrics.catalogue` (every family, :data:`METRICS`); this module is their API,
the look-ups by template and key. Standard library only (no torch), so every part of ncib can
import it. The analysis callbacks log exactly the scalar keys of their group (``keys(group)``), the
engine checks that, the tests compare against it, and ``docs/metrics.md`` is generated from it
(``python -m ncib.metrics > docs/metrics.md``).

A template holds placeholders in braces; each placeholder names an axis of :data:`AXES`, and a
template stands for every combination of the axes' values:
``"cca/mean_k/{features}"`` → ``cca/mean_k/raw``, ``cca/mean_k/normal``.
"""

from __future__ import annotations

from ncib.metrics.catalogue import METRICS
from ncib.metrics.vocabulary import AXES, GROUPS, MEMBERS, Metric, member_name

__all__ = [
    "AXES",
    "GROUPS",
    "MEMBERS",
    "METRICS",
    "Metric",
    "bound_keys",
    "key",
    "keys",
    "logged_name",
    "markdown_table",
    "member_keys",
    "member_name",
    "metric_of",
]


def _index() -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    for metric in METRICS:
        if metric.group not in GROUPS:
            raise ValueError(f"metric {metric.template!r} has unknown group {metric.group!r}")
        if metric.template in out:
            raise ValueError(f"metric template {metric.template!r} is defined twice")
        out[metric.template] = metric
    return out


_BY_TEMPLATE = _index()
_BY_KEY = {k: m for m in METRICS for k in m.keys()}


def key(template: str, **axes: str) -> str:
    """The concrete key of a registered ``template`` for the given axis values.

    Raises ``KeyError`` for an unregistered template and ``ValueError`` for a value outside its
    axis, so code that names a metric cannot drift from the registry.
    """
    metric = _BY_TEMPLATE.get(template)
    if metric is None:
        raise KeyError(f"{template!r} is not a registered metric (ncib/metrics/catalogue.py)")
    if set(axes) != set(metric.axes):
        raise ValueError(f"{template!r} needs the axes {metric.axes}, got {tuple(axes)}")
    for axis, value in axes.items():
        if value not in AXES[axis]:
            raise ValueError(f"{axis}={value!r} is not one of {AXES[axis]} (in {template!r})")
    return template.format(**axes)


def member_keys(template: str, **axes: str) -> tuple[str, ...]:
    """The key of a registered per-member ``template`` for each member, in :data:`MEMBERS`
    order: ``member_keys("nc1/{space}/{member}", space="raw")`` → ``nc1/raw/m0``, ``nc1/raw/m1``."""
    return tuple(key(template, member=m, **axes) for m in MEMBERS)


def bound_keys(template: str, **axes: str) -> tuple[str, str] | None:
    """The keys of the lower and upper end of a registered value's interval (None: the registry
    holds none). The bound follows the statistic, the last segment without a placeholder:
    ``cca/mean_k/{features}`` → ``cca/mean_k_{bound}/{features}``; ``gib/mi_xy`` → ``…_{bound}``."""
    key(template, **axes)  # the value itself is registered
    parts = template.split("/")
    parts[max((i for i, part in enumerate(parts) if "{" not in part), default=0)] += "_{bound}"
    ends = "/".join(parts)
    if ends not in _BY_TEMPLATE:
        return None
    return key(ends, bound="lo", **axes), key(ends, bound="hi", **axes)


def metric_of(name: str) -> Metric | None:
    """The registered family of a concrete key (``"nc1/raw/m0"`` → ``nc1/{space}/{member}``);
    None for a name the registry does not hold."""
    return _BY_KEY.get(name)


def keys(group: str, scalars: bool = True) -> list[str]:
    """Every key of ``group``: its logged scalars (default) or its record entries."""
    if group not in GROUPS:
        raise ValueError(f"unknown metric group {group!r}; known: {sorted(GROUPS)}")
    return [
        k
        for m in METRICS
        if m.group == group and (m.shape == "scalar") == scalars
        for k in m.keys()
    ]


def logged_name(group: str, name: str) -> str:
    """The name under which a key of ``group`` reaches the loggers (with its prefix)."""
    return GROUPS[group][1] + name


def markdown_table() -> str:
    """The metric reference of ``docs/metrics.md``."""
    lines = [
        "# Metrics",
        "",
        "Generated from `ncib/metrics/catalogue.py` by `python -m ncib.metrics > docs/metrics.md`;",
        "a test fails when this file and the registry disagree. `{axis}` stands for each value:",
        "",
    ]
    lines += [f"- `{{{a}}}`: {', '.join(f'`{v}`' for v in vals)}" for a, vals in AXES.items()]
    for group, (what, prefix) in GROUPS.items():
        lines += ["", f"## `{group}` — {what}", ""]
        if prefix:
            lines += [f"Logged scalars carry the prefix `{prefix}`.", ""]
        lines += ["| key | shape | meaning |", "|---|---|---|"]
        for m in METRICS:
            if m.group == group:
                where = "logged" if m.shape == "scalar" else f"record `{m.shape}`"
                lines.append(f"| `{m.template}` | {where} | {m.meaning} |")
    return "\n".join(lines) + "\n"
