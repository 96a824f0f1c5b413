"""Seeds and run-to-run noise: average the runs equal except the seed (the later sections fit
the means) and pool the within-point noise into ``fits["noise"]`` for the prediction
intervals. The averaging itself is ``analysis.replicates``."""

from __future__ import annotations

from ..errors import AnalysisError
from ..plots import fmt
from ..replicates import (
    average_replicates,
    config_columns,
    has_replicates,
    noise_estimate,
    seed_columns,
)


def section(r) -> None:
    r.seed_runs = r.runs
    lc, acc = r.cols["loss"], r.cols.get("accuracy")
    by = list(dict.fromkeys(config_columns(r.runs) + [
        c for c in (r.cols.get("params"), r.cols.get("data")) if c]))
    if not seed_columns(r.runs):
        raise AnalysisError("no seed column (seed or train.seed): every run is its own point")
    if not by or not has_replicates(r.runs, by):
        raise AnalysisError("every point was run with one seed, so the run-to-run noise is "
                            "unknown; add `seeds: 3` to the sweep spec")
    spread = [lc] + ([acc] if acc else [])
    avg = average_replicates(r.runs, by, spread=spread, run_id=r.opts.run_id)
    noise = noise_estimate(r.runs, by, lc)
    acc_noise = noise_estimate(r.runs, by, acc, log=False) if acc else None
    r.fits["noise"] = noise
    shown = ([r.opts.source] if r.opts.source in avg.columns else []) + [
        c for c in by if avg[c].nunique() >= 2] + ["n_seeds"]
    for m in spread:
        shown += [m, f"{m}_std"]
    r.doc.p(f"{len(r.runs)} runs at {len(avg)} points (runs equal except the seed); "
            "the sections below fit the mean of each point. Run-to-run noise, pooled "
            f"over the {noise.n_points} points with ≥ 2 seeds: σ = {fmt(noise.sigma)} "
            f"in log {lc} (about {fmt(100 * noise.sigma)}% of the loss; {noise.dof} "
            "degrees of freedom)" + (f"; std of {acc}: {fmt(acc_noise.sigma)}"
                                     if acc_noise and acc_noise.sigma else "") + ".")
    r.doc.table(avg[shown])
    r.runs = avg
    r.summary["replicates"] = {
        "points": len(avg), "runs": len(r.seed_runs), "noise": noise.to_dict(),
        "accuracy_noise": acc_noise.to_dict() if acc_noise else None,
        "table": avg[shown].to_dict(orient="records")}
