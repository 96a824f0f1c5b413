"""Compute-optimal frontier from a joint fit, and a planner for a FLOP budget.

With C = k·N·D (k = 6 for a dense transformer's forward and backward pass):
N_opt = G·(C/k)^a, D_opt = G⁻¹·(C/k)^b, a = β/(α+β), b = α/(α+β), G = (αA/(βB))^(1/(α+β)).
Every quantity carries a bootstrap interval when the fit has samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import laws
from .bootstrap import interval
from .errors import AnalysisError
from .result import Fit

# AIM v1 presets (El-Nouby et al. 2024): name, width, depth, heads.
AIM_PRESETS = (("aim-600m", 1536, 24, 12), ("aim-1b", 2048, 24, 16),
               ("aim-3b", 3072, 24, 24), ("aim-7b", 4096, 32, 32))


def trunk_params(width, depth, patch: int = 14, channels: int = 3):
    """AIM trunk parameters: blocks (12·d² + 4·d each), patch conv with bias, patch LN, final LN."""
    d = np.asarray(width, dtype=float)
    return depth * (12 * d**2 + 4 * d) + (channels * patch**2 * d + d) + 2 * d + 2 * d


def presets_table(rows=None) -> pd.DataFrame:
    """Presets as a table {name, width, depth, params}. ``rows``: a DataFrame or records with
    name, width, depth and optionally params (computed from width and depth when absent)."""
    if rows is None:
        df = pd.DataFrame([{"name": n, "width": w, "depth": d} for n, w, d, _ in AIM_PRESETS])
    else:
        df = pd.DataFrame(rows).copy()
    missing = {"name", "width", "depth"} - set(df.columns)
    if missing:
        raise AnalysisError(f"Presets need columns name, width, depth (and optionally params); "
                            f"missing {sorted(missing)}.")
    if "params" not in df.columns:
        df["params"] = trunk_params(df["width"].to_numpy(), df["depth"].to_numpy())
    return df[["name", "width", "depth", "params"]].reset_index(drop=True)


def nearest_preset(n: float, presets: pd.DataFrame) -> dict:
    """The preset whose parameter count is closest to ``n`` on a log scale."""
    i = int(np.argmin(np.abs(np.log(presets["params"].to_numpy(float)) - np.log(n))))
    row = presets.iloc[i]
    return {"name": str(row["name"]), "width": int(row["width"]), "depth": int(row["depth"]),
            "params": float(row["params"])}


def _require_joint(fit: Fit) -> None:
    if fit.law != "chinchilla":
        raise AnalysisError("The compute-optimal frontier needs a joint L(N, D) fit "
                            f"(law 'chinchilla'); got a '{fit.law}' fit.")


@dataclass
class Frontier:
    """Allocation exponents and coefficient, with intervals (None without a bootstrap)."""

    a: float
    b: float
    G: float
    a_ci: tuple[float, float] | None
    b_ci: tuple[float, float] | None
    G_ci: tuple[float, float] | None
    k: float

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "G": self.G, "a_ci": _lst(self.a_ci),
                "b_ci": _lst(self.b_ci), "G_ci": _lst(self.G_ci), "flops_per_param_token": self.k}


def _lst(t):
    return None if t is None else [float(t[0]), float(t[1])]


def frontier(fit: Fit, k: float = 6.0) -> Frontier:
    """Closed-form compute-optimal exponents of a joint fit."""
    _require_joint(fit)
    d = fit.derived()
    ci = fit.derived_ci()
    return Frontier(d["a"], d["b"], d["G"], ci.get("a"), ci.get("b"), ci.get("G"), k)


def allocation(fit: Fit, flops, k: float = 6.0) -> dict[str, np.ndarray | None]:
    """N_opt, D_opt and the loss there at each budget, each with lo/hi arrays (None without a
    bootstrap)."""
    _require_joint(fit)
    flops = np.atleast_1d(np.asarray(flops, dtype=float))
    p = fit.params
    n_opt, d_opt = laws.optimal_allocation(flops, p["A"], p["B"], p["alpha"], p["beta"], k)
    out = {"flops": flops, "n_opt": n_opt, "d_opt": d_opt,
           "loss": fit.predict(n_opt, d_opt)}
    s = fit.samples
    if s is None or len(s) == 0:
        out.update({f"{q}_{e}": None for q in ("n_opt", "d_opt", "loss") for e in ("lo", "hi")})
        return out
    ns, ds = laws.optimal_allocation(flops, s[:, 1], s[:, 2], s[:, 3], s[:, 4], k)
    ls = s[:, :1] + s[:, 1:2] * ns ** -s[:, 3:4] + s[:, 2:3] * ds ** -s[:, 4:5]
    for name, v in (("n_opt", ns), ("d_opt", ds), ("loss", ls)):
        lo, hi = interval(v, fit.level)
        out[f"{name}_lo"], out[f"{name}_hi"] = lo, hi
    return out


@dataclass
class Plan:
    """Recommendation for one FLOP budget."""

    flops: float
    n_opt: float
    d_opt: float
    loss: float
    n_ci: tuple[float, float] | None
    d_ci: tuple[float, float] | None
    loss_ci: tuple[float, float] | None
    preset: dict
    preset_d: float
    preset_loss: float
    preset_loss_ci: tuple[float, float] | None
    k: float

    def to_dict(self) -> dict:
        return {"flops": self.flops, "n_opt": self.n_opt, "n_ci": _lst(self.n_ci),
                "d_opt": self.d_opt, "d_ci": _lst(self.d_ci), "loss": self.loss,
                "loss_ci": _lst(self.loss_ci), "preset": self.preset, "preset_d": self.preset_d,
                "preset_loss": self.preset_loss, "preset_loss_ci": _lst(self.preset_loss_ci),
                "flops_per_param_token": self.k}


def plan(fit: Fit, flops: float, presets: pd.DataFrame | None = None, k: float = 6.0) -> Plan:
    """For a FLOP budget: the compute-optimal (N, D), the predicted loss (all with intervals), and
    the nearest preset shape with the D that spends the same budget and its predicted loss."""
    al = allocation(fit, [flops], k)
    presets = presets_table() if presets is None else presets
    pre = nearest_preset(float(al["n_opt"][0]), presets)
    d_pre = flops / (k * pre["params"])
    _, lo, hi = fit.predict_interval([pre["params"]], [d_pre])

    def ci(name):
        lo_v, hi_v = al[f"{name}_lo"], al[f"{name}_hi"]
        return None if lo_v is None else (float(lo_v[0]), float(hi_v[0]))

    return Plan(float(flops), float(al["n_opt"][0]), float(al["d_opt"][0]), float(al["loss"][0]),
                ci("n_opt"), ci("d_opt"), ci("loss"), pre, float(d_pre),
                float(fit.predict([pre["params"]], [d_pre])[0]),
                None if lo is None else (float(lo[0]), float(hi[0])), k)
