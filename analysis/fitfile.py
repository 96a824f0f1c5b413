"""Saved fits: ``fit --save FIT.json`` writes one, ``predict --fit FIT.json`` reads it back.

The file holds what predictions need: the law, its parameters, the bootstrap samples (curve
interval), the log residuals and the prediction-error model (prediction interval), and the column
names the fit used. Written atomically; read with the package's one JSON reader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aimscale.atomic import atomic_write_text
from aimscale.jsonfiles import UnreadableFileError, read_json

from .errors import AnalysisError
from .intervals import PredictionModel
from .jsonio import dumps
from .result import Fit, Goodness

FORMAT = "aimscale-analysis-fit/1"


def save_fit(fit: Fit, path: str | Path, columns: dict[str, str]) -> Path:
    """Write ``fit`` (with its samples and error model) and the ``columns`` it used."""
    doc = {"format": FORMAT, "summary": fit.to_dict(), "law": fit.law,
           "param_names": list(fit.param_names), "values": fit.values,
           "samples": None if fit.samples is None else fit.samples,
           "log_residuals": fit.log_residuals, "n_points": fit.n_points,
           "objective": fit.objective, "objective_name": fit.objective_name,
           "sigma": fit.sigma, "converged": fit.converged, "message": fit.message,
           "gof": {"rmse": fit.gof.rmse, "mae": fit.gof.mae, "r2_log": fit.gof.r2_log},
           "level": fit.level, "inputs": list(fit.inputs),
           "input_range": {k: list(v) for k, v in fit.input_range.items()}, "seed": fit.seed,
           "warnings": fit.warnings, "notes": fit.notes,
           "pi_model": None if fit.pi_model is None else {**fit.pi_model.to_dict(),
                                                           "scores": fit.pi_model.scores},
           "columns": columns}
    return atomic_write_text(path, dumps(doc, indent=1) + "\n")


def load_fit(path: str | Path) -> tuple[Fit, dict[str, str]]:
    """The fit saved at ``path`` and its column names; AnalysisError when it is not one."""
    try:
        doc = read_json(path)
    except UnreadableFileError as err:
        raise AnalysisError(f"Cannot read the saved fit: {err}.") from err
    if doc is None:
        raise AnalysisError(f"Saved fit {path} does not exist; write one with "
                            "'python -m analysis fit … --save FIT.json'.")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise AnalysisError(f"{path} is not a fit saved by 'python -m analysis fit --save' "
                            f"(no \"format\": \"{FORMAT}\").")
    try:
        samples = None if doc["samples"] is None else np.array(doc["samples"], dtype=float)
        g = doc["gof"]
        fit = Fit(law=doc["law"], param_names=tuple(doc["param_names"]),
                  values=np.array(doc["values"], dtype=float), n_points=int(doc["n_points"]),
                  objective=float(doc["objective"]), converged=bool(doc["converged"]),
                  message=str(doc["message"]), gof=Goodness(g["rmse"], g["mae"], g["r2_log"]),
                  log_residuals=np.array(doc["log_residuals"], dtype=float), samples=samples,
                  level=float(doc["level"]), warnings=list(doc["warnings"]),
                  notes=list(doc["notes"]), inputs=tuple(doc["inputs"]),
                  input_range={k: tuple(v) for k, v in doc["input_range"].items()},
                  seed=doc["seed"], objective_name=doc["objective_name"], sigma=doc["sigma"])
        if doc["pi_model"] is not None:
            fit.pi_model = PredictionModel.from_dict(fit.law, doc["pi_model"])
        return fit, dict(doc["columns"])
    except (KeyError, TypeError, ValueError) as err:
        raise AnalysisError(f"Saved fit {path} is incomplete or damaged ({err!r}); "
                            "fit again with --save.") from err
