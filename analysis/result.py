"""The result of a scaling-law fit: parameters, bootstrap samples, goodness of fit, predictions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import laws
from .bootstrap import interval

CI_METHOD = "percentile bootstrap over runs (parameter uncertainty only)"


@dataclass
class Goodness:
    """Goodness of fit: RMSE and MAE in loss units, R² of log loss."""

    rmse: float
    mae: float
    r2_log: float

    @classmethod
    def of(cls, observed: np.ndarray, predicted: np.ndarray) -> Goodness:
        obs, pred = np.asarray(observed, float), np.asarray(predicted, float)
        err = pred - obs
        lo, lp = np.log(obs), np.log(np.maximum(pred, 1e-300))
        ss_tot = float(np.sum((lo - lo.mean()) ** 2))
        r2 = 1.0 - float(np.sum((lp - lo) ** 2)) / ss_tot if ss_tot > 0 else float("nan")
        return cls(float(np.sqrt(np.mean(err**2))), float(np.mean(np.abs(err))), r2)


@dataclass
class Fit:
    """A fitted law. ``samples`` holds bootstrap parameter rows in ``param_names`` order."""

    law: str
    param_names: tuple[str, ...]
    values: np.ndarray
    n_points: int
    objective: float
    converged: bool
    message: str
    gof: Goodness
    log_residuals: np.ndarray = field(repr=False)
    samples: np.ndarray | None = field(default=None, repr=False)
    level: float = 0.95
    n_failed_resamples: int = 0
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    flat: bool = False
    inputs: tuple[str, ...] = ()
    input_range: dict[str, tuple[float, float]] = field(default_factory=dict)
    seed: int | None = 0
    objective_name: str = "huber"
    sigma: float | None = None  # residual scale of the Huber-likelihood (huber-mle) objective
    pi_model: Any = None  # intervals.PredictionModel once calibrated

    @property
    def params(self) -> dict[str, float]:
        return {k: float(v) for k, v in zip(self.param_names, self.values, strict=True)}

    @property
    def n_resamples(self) -> int:
        return 0 if self.samples is None else len(self.samples)

    def ci(self) -> dict[str, tuple[float, float]]:
        """Percentile intervals of every parameter (empty without a bootstrap)."""
        if self.samples is None or len(self.samples) == 0:
            return {}
        lo, hi = interval(self.samples, self.level)
        return {k: (float(a), float(b)) for k, a, b in zip(self.param_names, lo, hi, strict=True)}

    def se(self) -> dict[str, float]:
        """Bootstrap standard error of every parameter (empty without a bootstrap)."""
        if self.samples is None or len(self.samples) < 2:
            return {}
        sd = np.nanstd(self.samples, axis=0, ddof=1)
        return {k: float(v) for k, v in zip(self.param_names, sd, strict=True)}

    def predict(self, *inputs) -> np.ndarray:
        """Point prediction of the loss at ``inputs`` (arrays, in the law's input order)."""
        return laws.predict(self.law, self.values, *map(np.atleast_1d, inputs))

    def predict_samples(self, *inputs) -> np.ndarray | None:
        """Predictions for every bootstrap sample, shape (R, m); None without a bootstrap."""
        if self.samples is None or len(self.samples) == 0:
            return None
        return laws.predict(self.law, self.samples, *map(np.atleast_1d, inputs))

    def predict_interval(self, *inputs, kind: str = "ci", seed: int | None = None):
        """(prediction, lo, hi) at ``inputs``.

        kind="ci": interval of the fitted curve (parameter uncertainty only).
        kind="pi": interval for a new observation. With a prediction-error model
        (``pi_model``, see ``intervals``) it includes noise and extrapolation error; without one,
        as kind="pi_residuals".
        kind="pi_residuals": each bootstrap prediction times exp(a residual drawn from the fit's
        log residuals), so run-to-run scatter is included but not extrapolation error.
        lo/hi are None without a bootstrap (for "pi_residuals" the residuals alone are used then).
        """
        pred = self.predict(*inputs)
        samples = self.predict_samples(*inputs)
        if kind == "ci":
            if samples is None:
                return pred, None, None
            lo, hi = interval(samples, self.level)
            return pred, lo, hi
        if kind == "pi" and self.pi_model is not None:
            from .intervals import predict

            rows = predict(self, self.pi_model, list(map(np.atleast_1d, inputs)), self.level,
                           self.seed if seed is None else seed)
            return pred, np.array([r.pi[0] for r in rows]), np.array([r.pi[1] for r in rows])
        if kind not in ("pi", "pi_residuals"):
            raise ValueError("kind must be 'ci', 'pi' or 'pi_residuals'")
        rng = np.random.default_rng(self.seed if seed is None else seed)
        base = pred[None, :] if samples is None else samples
        reps = max(1, 2000 // base.shape[0])
        base = np.repeat(base, reps, axis=0)
        noise = rng.choice(self.log_residuals, size=base.shape) if self.log_residuals.size else 0
        lo, hi = interval(base * np.exp(noise), self.level)
        return pred, lo, hi

    def derived(self) -> dict[str, float]:
        """Quantities derived from the parameters (compute-optimal exponents for the joint law)."""
        if self.law != "chinchilla":
            return {}
        p = self.params
        a, b, g = laws.compute_optimal(p["A"], p["B"], p["alpha"], p["beta"])
        return {"a": float(a), "b": float(b), "G": float(g)}

    def derived_ci(self) -> dict[str, tuple[float, float]]:
        if self.law != "chinchilla" or self.samples is None or len(self.samples) == 0:
            return {}
        s = self.samples
        vals = laws.compute_optimal(s[:, 1], s[:, 2], s[:, 3], s[:, 4])
        out = {}
        for name, v in zip(("a", "b", "G"), vals, strict=True):
            lo, hi = interval(v[np.isfinite(v)], self.level)
            out[name] = (float(lo), float(hi))
        return out

    def derived_se(self) -> dict[str, float]:
        if self.law != "chinchilla" or self.samples is None or len(self.samples) < 2:
            return {}
        s = self.samples
        vals = laws.compute_optimal(s[:, 1], s[:, 2], s[:, 3], s[:, 4])
        return {n: float(np.std(v[np.isfinite(v)], ddof=1))
                for n, v in zip(("a", "b", "G"), vals, strict=True)}

    def to_dict(self) -> dict:
        """JSON-ready summary in the shape of ``python -m analysis fit --json``."""
        out = {
            "law": self.law,
            "n_points": self.n_points,
            "inputs": list(self.inputs),
            "params": self.params,
            "ci": {k: list(v) for k, v in self.ci().items()},
            "se": self.se(),
            "level": self.level,
            "n_resamples": self.n_resamples,
            "n_failed_resamples": self.n_failed_resamples,
            "objective": self.objective,
            "objective_name": self.objective_name,
            "converged": self.converged,
            "message": self.message,
            "rmse": self.gof.rmse,
            "mae": self.gof.mae,
            "r2_log": self.gof.r2_log,
            "flat": self.flat,
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }
        if self.law == "chinchilla":
            co = self.derived()
            co["ci"] = {k: list(v) for k, v in self.derived_ci().items()}
            co["se"] = self.derived_se()
            out["compute_optimal"] = co
        if self.sigma is not None:
            out["sigma"] = self.sigma
        if self.n_resamples:
            out["ci_method"] = CI_METHOD
        if self.pi_model is not None:
            out["pi_method"] = self.pi_model.to_dict()["method"]
            out["pi_model"] = self.pi_model.to_dict()
        return out
