"""Ablations: each value of one factor (the spec's `compare:` factor, else `variant`, else the
one config key the runs vary) against its baseline at one (size, data) setting, over every
seed's run, with Welch verdicts; the comparison itself is in ``analysis.compare``. For the
accuracy metric, each value the AIM paper ranks against the baseline also gets the paper's
direction and whether this run agrees (``analysis.paper_ablations``)."""

from __future__ import annotations

from .. import plots
from ..compare import ablation_factor, ablation_table, ablation_verdicts
from ..errors import AnalysisError
from ..paper_ablations import paper_verdicts, verdict_sentences
from ..plots import fmt


def section(r) -> None:
    rows = r.runs if r.seed_runs is None else r.seed_runs  # one row per seed
    v = ablation_factor(rows, r.opts.variant)
    out = {}
    metrics = [r.cols["loss"]] + ([r.cols["accuracy"]] if r.cols.get("accuracy") else [])
    # Values are compared at one setting of size and data: pooling sizes would bury the
    # ablation under the scaling trend. Use the largest setting that has several values.
    rows = rows[rows[v].notna()]
    keys = [c for c in (r.cols.get("params"), r.cols.get("data")) if c and c != v]
    where = ""
    if keys and len(rows.groupby(keys)) > 1:
        settings = [(k, g) for k, g in rows.groupby(keys) if g[v].nunique() >= 2]
        if not settings:
            raise AnalysisError(f"no single (size, data) setting was run with two or more "
                                f"values of '{v}'")
        key, rows = max(settings, key=lambda kg: (kg[1][v].nunique(), kg[0]))
        key = key if isinstance(key, tuple) else (key,)
        where = ", ".join(f"{c} = {fmt(float(k))}" for c, k in zip(keys, key, strict=True))
        r.doc.p(f"Values compared at {where} (the largest setting with several "
                f"values; {len(settings)} setting(s) had several).")
    lvl = int(100 * r.opts.level)
    r.doc.p(f"Factor compared: {v}. Δ = mean over seeds minus the baseline's mean, with "
            f"a {lvl}% Welch t-interval over seeds; a difference is resolved when its "
            "interval excludes 0.")
    for i, m in enumerate(metrics):
        tab = ablation_table(rows, v, m, baseline=r.opts.baseline, bootstrap=r.opts.bootstrap,
                             seed=r.opts.seed, level=r.opts.level)
        tab = paper_verdicts(tab, v, rows, accuracy=m == r.cols.get("accuracy"))
        fig = plots.plot_ablation(tab, metric_label=m, title=f"{v}: {m}")
        r.doc.figure(fig, f"ablation_{i}", f"{m} per value of {v} (mean ± std over "
                     f"seeds); Δ to the baseline with its {lvl}% interval.")
        r.doc.table(tab.drop(columns="paper_reference").rename(columns={"variant": v}))
        verdicts = ablation_verdicts(tab, m, r.opts.level)
        paper = verdict_sentences(tab, m)
        r.doc.bullets(verdicts + paper)
        out[m] = {"table": tab.to_dict(orient="records"), "verdicts": verdicts,
                  "paper_verdicts": paper}
    r.summary["ablations"] = {"factor": v, "setting": where, "tables": out}
