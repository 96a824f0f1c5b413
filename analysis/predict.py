"""One entry point for fitting a named law, its prediction-error model, and predictions at targets.

``fit_law`` dispatches on the law ('chinchilla', 'power', 'bnsl') and the joint law's objective
('huber' or 'huber-mle'); ``calibrated`` adds the error model of ``intervals`` (nested backtests
refit cheaply from the full fit's optimum); ``predictions`` evaluates ``ci`` and ``pi``.
"""

from __future__ import annotations

import numpy as np

from .errors import AnalysisError
from .fit_joint import fit_joint, starts_near
from .intervals import PredictionModel, build_model, predict
from .replicates import Noise
from .result import Fit

LAWS = ("chinchilla", "power", "bnsl")


def fit_law(law: str, inputs: list[np.ndarray], loss: np.ndarray, *, names: tuple[str, ...],
            objective: str = "huber", **kw) -> Fit:
    """Fit ``law`` to ``inputs`` ([N, D] or [x]) and ``loss``; ``kw`` go to the law's fit
    (bootstrap, seed, level, n_jobs, groups, delta, floor, reduction, breaks, grid)."""
    from .bnsl import fit_bnsl
    from .fit_power import fit_power

    if objective not in ("huber", "huber-mle"):
        raise AnalysisError(f"Unknown objective {objective!r}; use huber or huber-mle.")
    if objective == "huber-mle" and law != "chinchilla":
        raise AnalysisError("--objective huber-mle is offered for the joint law only "
                            "(--law chinchilla).")
    if law == "chinchilla":
        if objective == "huber-mle":
            from .huber_mle import fit_joint_mle

            return fit_joint_mle(inputs[0], inputs[1], loss, names=names, **kw)
        return fit_joint(inputs[0], inputs[1], loss, names=names, **kw)
    if law == "power":
        kw.pop("breaks", None)
        return fit_power(inputs[0], loss, name=names[0], **kw)
    if law == "bnsl":
        for k in ("delta", "floor", "grid", "reduction"):
            kw.pop(k, None)
        return fit_bnsl(inputs[0], loss, name=names[0], **kw)
    raise AnalysisError(f"Unknown law {law!r}; use {', '.join(LAWS)}.")


def calibrated(law: str, inputs: list[np.ndarray], loss: np.ndarray, fit: Fit, *,
               noise: Noise | None = None, replicates: np.ndarray | None = None,
               **kw) -> PredictionModel:
    """The prediction-error model of ``fit`` (fitted with ``kw``) on its data; also stored on
    ``fit.pi_model``. The nested refits use the same settings without a bootstrap. ``noise`` and
    ``replicates``: when the rows are means of seeds (see ``intervals.build_model``)."""
    inputs = [np.asarray(v, dtype=float) for v in inputs]
    loss = np.asarray(loss, dtype=float)
    base = {k: v for k, v in kw.items() if k not in ("bootstrap", "seed", "n_jobs", "groups",
                                                     "level", "grid", "objective")}
    names = tuple(fit.inputs) or tuple(f"x{i}" for i in range(len(inputs)))
    if law == "chinchilla":
        base["grid"] = starts_near(fit)

    def refit(mask: np.ndarray) -> Fit:
        import warnings

        extra = {}
        if law == "power":  # the full fit's optimum and the data-adapted starts
            from .fit_power import power_grid

            p = fit.params
            best = [np.log(max(p["E"], 1e-9)), np.log(p["A"]), p["alpha"]]
            floor = base.get("floor", True)
            extra["grid"] = np.vstack([best, power_grid(inputs[0][mask], loss[mask], floor)[:54]])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fit_law(law, [v[mask] for v in inputs], loss[mask], names=names,
                           bootstrap=0, **base, **extra)

    model = build_model(law, inputs, loss, fit, refit, noise=noise, replicates=replicates)
    fit.pi_model = model
    return model


def parse_at(specs: list[str], law: str, columns: tuple[str, ...]) -> list[np.ndarray]:
    """``["N=1e9,D=2e10", …]`` → input arrays in the law's order. Keys: N and D (or the column
    names) for the joint law, x (or the column name) otherwise."""
    want = ("N", "D") if law == "chinchilla" else ("x",)
    alias = {c.lower(): w for c, w in zip(columns, want, strict=False)}
    alias.update({w.lower(): w for w in want})
    rows = {w: [] for w in want}
    for spec in specs:
        got = {}
        for part in filter(None, (s.strip() for s in spec.split(","))):
            key, sep, val = part.partition("=")
            k = alias.get(key.strip().lower())
            try:
                v = float(val)
            except ValueError:
                v = float("nan")
            if not sep or k is None or not np.isfinite(v) or v <= 0:
                keys = ",".join(f"{w}=…" for w in want)
                raise AnalysisError(f"--at takes {keys} with positive numbers (keys "
                                    f"{', '.join(want)} or the column names "
                                    f"{', '.join(columns)}); got {spec!r}.")
            got[k] = v
        missing = [w for w in want if w not in got]
        if missing:
            raise AnalysisError(f"--at {spec!r} lacks {', '.join(missing)}; give "
                                f"{','.join(f'{w}=…' for w in want)}.")
        for w in want:
            rows[w].append(got[w])
    return [np.array(rows[w]) for w in want]


def predictions(fit: Fit, targets: list[np.ndarray], level: float, seed: int | None = 0) -> dict:
    """JSON-ready predictions at ``targets`` with ``ci``, ``pi``, their SEs, methods, warnings."""
    from .intervals import CI_METHOD

    model = fit.pi_model
    if model is None:
        raise AnalysisError("This fit has no prediction-error model; fit it through "
                            "analysis.predict.calibrated (or the CLI) first.")
    want = ("N", "D") if fit.law == "chinchilla" else ("x",)
    rows = predict(fit, model, targets, level, seed, names=list(want))
    warn = []
    for r in rows:
        for w in r.warnings:
            where = ", ".join(f"{k}={v:.3g}" for k, v in r.inputs.items())
            warn.append(f"prediction at {where}: {w}")
    return {"law": fit.law, "level": level, "ci_method": CI_METHOD if fit.n_resamples else None,
            "pi_method": model.to_dict()["method"], "pi_model": model.to_dict(),
            "predictions": [r.to_dict() for r in rows], "warnings": warn}
