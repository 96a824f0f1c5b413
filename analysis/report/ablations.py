"""Ablations: each variant against the baseline at one (size, data) setting, with the comparison
itself in ``analysis.compare`` (seeds resampled)."""

from __future__ import annotations

from .. import plots
from ..compare import ablation_table
from ..errors import AnalysisError
from ..plots import fmt


def section(r) -> None:
    v = r.opts.variant
    if v not in r.runs.columns or r.runs[v].nunique() < 2:
        raise AnalysisError(f"no '{v}' column with at least 2 variants")
    out = {}
    metrics = [r.cols["loss"]] + ([r.cols["accuracy"]] if r.cols.get("accuracy") else [])
    # Variants are compared at one setting of size and data: pooling sizes would bury the
    # ablation under the scaling trend. Use the largest setting that has several variants.
    rows = r.runs[r.runs[v].notna()]
    keys = [c for c in (r.cols.get("params"), r.cols.get("data")) if c]
    where = ""
    if keys and len(rows.groupby(keys)) > 1:
        settings = [(k, g) for k, g in rows.groupby(keys) if g[v].nunique() >= 2]
        if not settings:
            raise AnalysisError("no single (size, data) setting was run with two or more "
                                "variants")
        key, rows = max(settings, key=lambda kg: (kg[1][v].nunique(), kg[0]))
        key = key if isinstance(key, tuple) else (key,)
        where = ", ".join(f"{c} = {fmt(float(k))}" for c, k in zip(keys, key, strict=True))
        r.doc.p(f"Variants compared at {where} (the largest setting with several "
                f"variants; {len(settings)} setting(s) had several).")
    for i, m in enumerate(metrics):
        tab = ablation_table(rows, v, m, bootstrap=r.opts.bootstrap, seed=r.opts.seed,
                             level=r.opts.level)
        fig = plots.plot_ablation(tab, metric_label=m, title=f"Ablations: {m}")
        r.doc.figure(fig, f"ablation_{i}", f"{m} per variant (mean ± std over seeds); "
                     "Δ to the baseline with a bootstrap interval (seeds resampled).")
        r.doc.table(tab)
        out[m] = tab.to_dict(orient="records")
    r.summary["ablations"] = {"setting": where, "tables": out}
