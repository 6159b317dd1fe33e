"""Flat outputs of :class:`ncib.analysis.PairAnalysis`: scalar dicts and JSON-ready lists."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .etf import nc4_agreement

MEMBERS = ("m0", "m1")
FEATURES = ("raw", "normal", "tk")  # raw Z, normal scores, T_K
SPACES = {"full": "raw", "tk": "tk"}  # ETF spaces and the features (and probe) they use


class PairOutputs:
    """Mixin of :class:`~ncib.analysis.PairAnalysis` turning its cached results into outputs."""

    def identifiability_scalars(self) -> dict[str, float]:
        """``cca/…`` keys: in-sample and held-out summaries of the K leading ρ (raw, normal)."""
        out: dict[str, float] = {}
        for kind in ("raw", "normal"):
            res, held = self.identifiability(kind), self.heldout(kind)
            out |= {
                f"cca/mean_k/{kind}": float(res.mean),
                f"cca/var_k/{kind}": float(res.var),
                f"cca/std_k/{kind}": float(res.std),
                f"cca/min_k/{kind}": float(res.rho_k.min()),
            }
            out |= {
                f"cca/heldout/mean_k/{kind}": float(held.mean),
                f"cca/heldout/var_k/{kind}": float(held.var),
                f"cca/heldout/std_k/{kind}": float(held.std),
            }
        return out

    def gib_scalars(self) -> dict[str, float]:
        """``gib/…`` keys: I(X;Y), β_K, β_{K+1}, the β of T_K and the information there."""
        g, k = self.gib(0), self.k
        crit = g.beta_crit
        beta = float(self.tk(0).beta)
        curve = g.information_curve(beta)
        i_xy = float(curve.i_xy)
        out = {
            "gib/mi_xy": i_xy,
            "gib/beta_crit/k": float(crit[k - 1]),
            "gib/beta_crit/k_next": float(crit[k]) if k < crit.shape[0] else math.inf,
            "gib/beta_tk": beta,
            "gib/i_tx_tk": float(curve.i_tx[0]),
            "gib/i_ty_tk": float(curve.i_ty[0]),
            "gib/i_ty_frac_tk": float(curve.i_ty[0]) / i_xy if i_xy > 0 else 0.0,
        }
        for m, name in enumerate(MEMBERS):
            scaling = self.tk(m).feature_scaling
            out[f"gib/feature_scaling/min/{name}"] = float(scaling.min())
            out[f"gib/feature_scaling/max/{name}"] = float(scaling.max())
        return out

    def etf_scalars(self) -> dict[str, float]:
        """``etf/…``, ``nc1/…``, ``ncc/…``, ``nc4/…`` keys on full features and on T_K.

        NC4 compares with the raw-feature probe (full) and the T_K probe (tk), so this fits
        those probes if they are not cached yet.
        """
        out: dict[str, float] = {}
        for space, kind in SPACES.items():
            for m, name in enumerate(MEMBERS):
                st, tail = self.etf(space, m), f"{space}/{name}"
                for field in ("equinorm", "cos_mean", "cos_std", "angle_std_deg", "cos_dev"):
                    out[f"etf/{field}/{tail}"] = float(getattr(st, field))
                out[f"nc1/{tail}"] = float(self.nc1(space, m).value)
                probe = self.probe(kind, m)
                for split, y, pred in (
                    ("train", self.y_train, probe.train_pred),
                    ("test", self.y_test, probe.test_pred),
                ):
                    ncc = self.ncc(space, m, split)
                    out[f"ncc/{split}_acc/{tail}"] = float((ncc == y).double().mean())
                    out[f"nc4/{split}/{tail}"] = float(nc4_agreement(ncc, pred))
        return out

    def probe_scalars(self) -> dict[str, float]:
        """``probe/…`` keys: train/test accuracy per feature kind and member, both-correct."""
        out: dict[str, float] = {}
        for kind in FEATURES:
            probes = [self.probe(kind, m) for m in range(2)]
            for name, p in zip(MEMBERS, probes, strict=True):
                out[f"probe/train_acc/{kind}/{name}"] = float(p.train_acc)
                out[f"probe/test_acc/{kind}/{name}"] = float(p.test_acc)
            both = (probes[0].test_pred == self.y_test) & (probes[1].test_pred == self.y_test)
            out[f"probe/test_both_correct/{kind}"] = float(both.double().mean())
        return out

    def scalars(self) -> dict[str, float]:
        """All scalar keys (see the class docstring)."""
        return (
            self.identifiability_scalars()
            | self.gib_scalars()
            | self.etf_scalars()
            | self.probe_scalars()
        )

    def spectra(self) -> dict[str, list[float]]:
        """Full CCA spectra, held-out ρ of the K leading pairs, GIB λ_i and β_i."""
        out = {f"cca/rho/{kind}": self.cca(kind).rho.tolist() for kind in ("raw", "normal")}
        out |= {
            f"cca/heldout/rho_k/{kind}": self.heldout(kind).rho_k.tolist()
            for kind in ("raw", "normal")
        }
        return out | {
            "gib/lambda": self.gib(0).lam.tolist(),
            "gib/beta_crit": self.gib(0).beta_crit.tolist(),
        }

    def information_curve(self, betas: Sequence[float] | Tensor | None = None) -> dict[str, Any]:
        """I(T;X), I(T;Y) along β (default: 256 log-spaced β in [1, 10·β_{K+1}])."""
        g = self.gib(0)
        if betas is None:
            finite = g.beta_crit[torch.isfinite(g.beta_crit)]
            top = float(finite[min(self.k, finite.numel() - 1)]) if finite.numel() else 10.0
            betas = torch.logspace(0.0, math.log10(10.0 * max(top, 1.0)), 256, dtype=torch.float64)
        c = g.information_curve(betas)
        return {
            "beta": c.beta.tolist(),
            "i_tx": c.i_tx.tolist(),
            "i_ty": c.i_ty.tolist(),
            "i_xy": float(c.i_xy),
        }

    def feature_scaling(self) -> dict[str, list[float]]:
        """α_i / mean α of T_K per member (paper Fig. 4B/C)."""
        return {name: self.tk(m).feature_scaling.tolist() for m, name in enumerate(MEMBERS)}

    def record(self) -> dict[str, Any]:
        """Everything, JSON-ready: scalars, spectra, information curve, feature scaling, warnings."""
        return {
            "scalars": self.scalars(),
            "spectra": self.spectra(),
            "information_curve": self.information_curve(),
            "feature_scaling": self.feature_scaling(),
            "warnings": list(self.warnings),
        }
