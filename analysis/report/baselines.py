"""What pre-training adds: the same probes on two baselines — raw pixels (the patches, no trunk)
and the untrained trunk (step 0, same init seed) — beside the trained runs.

Baseline rows come from a sweep's `baselines: [pixels, untrained]` (``collect`` gives them a
``features`` column, pixels | untrained; trained runs are ``trunk``) and carry the trunk
protocol's probe columns (``probe.linear_last.top1``). They are split off before any other
section sees the table (``split_baselines``), so no fit or count includes them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data import numeric
from ..errors import AnalysisError
from ..plots import fmt

FEATURES = "features"
SHAPE = ("model.width", "model.depth")  # what an untrained trunk is matched to a trained run by


def split_baselines(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trained rows, baseline rows): rows whose ``features`` is set and is not ``trunk`` are
    baselines; a table without the column has none."""
    if FEATURES not in runs.columns:
        return runs, runs.iloc[0:0]
    feats = runs[FEATURES].fillna("trunk").astype(str)
    return runs.loc[feats == "trunk"].copy(), runs.loc[feats != "trunk"].copy()


def _best(df: pd.DataFrame, col: str) -> float:
    v = numeric(df, col) if col in df.columns else np.array([])
    v = v[np.isfinite(v)]
    return float(v.max()) if len(v) else float("nan")


def _mean(df: pd.DataFrame, col: str) -> float:
    v = numeric(df, col) if col in df.columns else np.array([])
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else float("nan")


def _finite_max(values) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.max()) if len(v) else float("nan")


def compare_probe(trained: pd.DataFrame, base: pd.DataFrame, col: str,
                  params: str | None = None) -> dict:
    """One probe column: the best trained run, the pixel baseline, the untrained trunk (best
    shape), the gain over the better baseline, and per model shape the best trained run (over
    data sizes and seeds' means) against that shape's untrained trunk (mean over seeds)."""
    pixels = base[base[FEATURES] == "pixels"]
    untrained = base[base[FEATURES] == "untrained"]
    best = _best(trained, col)
    px, ut = _mean(pixels, col), _best(untrained, col)
    strongest = _finite_max([px, ut])
    out = {"probe": col, "trained_best": best, "pixels": px, "untrained_best": ut,
           "gain_over_best_baseline": best - strongest if np.isfinite(strongest) else None,
           "per_size": []}
    shape = [c for c in SHAPE if c in trained.columns and c in untrained.columns]
    if shape and col in trained.columns:
        tr = trained.copy()
        tr["_v"] = numeric(tr, col)
        for key, g in tr[np.isfinite(tr["_v"])].groupby(shape, sort=True):
            key = key if isinstance(key, tuple) else (key,)
            match = untrained
            for c, k in zip(shape, key, strict=True):
                match = match[numeric(match, c) == float(k)]
            row = {c: int(k) for c, k in zip(shape, key, strict=True)}
            if params and params in g.columns:
                row["params"] = float(numeric(g, params)[0])
            row["trained_best"] = float(g["_v"].max())
            row["untrained"] = _mean(match, col)
            row["pixels"] = px
            row["gain_over_untrained"] = row["trained_best"] - row["untrained"]
            out["per_size"].append(row)
    return out


def _sentence(res: dict) -> str:
    col, best, px, ut = res["probe"], res["trained_best"], res["pixels"], res["untrained_best"]
    parts = [f"{col}: best trained run {fmt(best)}"]
    if np.isfinite(px):
        parts.append(f"raw pixels {fmt(px)}")
    if np.isfinite(ut):
        parts.append(f"untrained trunk {fmt(ut)} (best shape)")
    gain = res["gain_over_best_baseline"]
    text = ", ".join(parts)
    if gain is None or not np.isfinite(best):
        return text + "."
    if gain > 0:
        return text + f": pre-training adds {gain:+.3f} over the better baseline."
    return (text + f": the trained features do not beat the better baseline ({gain:+.3f}); at "
            "this scale pre-training has not yet paid for itself on this probe.")


def section(r) -> None:
    base = r.baselines
    if base is None or base.empty:
        raise AnalysisError("no baseline rows in the table (features pixels / untrained); add "
                            "`baselines: [pixels, untrained]` to the sweep spec and re-collect")
    trained = r.runs
    probes = [c for c in r.probes if c in base.columns and np.isfinite(numeric(base, c)).any()]
    if not probes:
        raise AnalysisError(f"the baseline rows share no probe column with the trained runs "
                            f"(trained: {', '.join(r.probes) or 'none'})")
    r.doc.p("The same probe protocol (kind, learning-rate × weight-decay grid, data limits) on "
            "two baselines: raw pixels (the patches as tokens, no trunk; the linear probe sees "
            "the flattened pixels, the attentive one a bag of patches without positions) and "
            "the untrained trunk (the run's model at step 0, same init seed). Trained = the "
            "best run (per model shape: the best over its data sizes).")
    results = [compare_probe(trained, base, c, r.cols.get("params")) for c in probes]
    r.doc.table(pd.DataFrame([{k: v for k, v in res.items() if k != "per_size"}
                              for res in results]))
    r.doc.bullets([_sentence(res) for res in results])
    for res in results:
        if res["per_size"]:
            r.doc.p(f"Per model shape, {res['probe']} (untrained: mean over its seeds):")
            r.doc.table(pd.DataFrame(res["per_size"]))
    overall = {"trained_best": _finite_max([x["trained_best"] for x in results]),
               "baseline_best": _finite_max([v for x in results
                                             for v in (x["pixels"], x["untrained_best"])])}
    overall["gain"] = overall["trained_best"] - overall["baseline_best"]
    r.doc.p(f"Over every probe kind: best trained {fmt(overall['trained_best'])}, best "
            f"baseline {fmt(overall['baseline_best'])} (Δ {overall['gain']:+.3f}).")
    r.summary["baselines"] = {"probes": {res["probe"]: res for res in results},
                              "overall": overall,
                              "rows": int(len(base)),
                              "features": sorted(base[FEATURES].astype(str).unique())}
