"""Search the designs that a pool of finished runs contains for one that meets the demo's
Spearman and β targets together (README, "The demo study").

A design keeps every held-out run (width >= --held-min-width) and, for each smaller width, a
contiguous range of its data sizes that ends at one of its two largest (at least
--min-results results in all). Stage 1 computes the
loss <-> probe Spearman of every design; stage 2 fits the joint law with a bootstrap to the
largest and to a random sample of the designs with Spearman <= --rho and reports β's interval
and the floor E of each.

    python scripts/exploration/design_search.py TABLE:ACC_COLUMN [TABLE:ACC_COLUMN ...]
    # the README's search (17 min on one core): the demo's runs, then data_term.yaml's, probed
    # with the demo's protocol by `reprobe.py SWEEP demo xg.csv -- --kind both --epochs 5
    # --limit-train 10000 --limit-test 10000 --lr 0.01,0.03,0.1,0.3`
    python scripts/exploration/design_search.py \
        sweep_runs/demo/collect/runs.csv:probe.attentive_last.top1 xg.csv:demo_attentive_last

TABLE is a `collect` runs.csv or a `reprobe.py` table; when two tables hold the same
(width, images seen), the first listed wins.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from analysis.fit_joint import fit_joint  # noqa: E402

COLUMNS = ["model.width", "images_seen", "trunk_params", "total_flops", "final_val_loss"]


def load_pool(specs: list[str]) -> pd.DataFrame:
    tables = []
    for spec in specs:
        path, _, acc = spec.rpartition(":")
        table = pd.read_csv(path)
        if "features" in table:
            table = table[table["features"].fillna("trunk") == "trunk"]
        tables.append(table[COLUMNS + [acc]].rename(columns={acc: "acc"}))
    pool = pd.concat(tables).drop_duplicates(subset=["model.width", "images_seen"])
    return pool.sort_values(["model.width", "images_seen"]).reset_index(drop=True)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])


def designs(pool: pd.DataFrame, held_min_width: float):
    """(rows of the design) for every design the pool contains."""
    widths = sorted(w for w in pool["model.width"].unique() if w < held_min_width)
    held = pool.index[pool["model.width"] >= held_min_width].tolist()
    rows = {w: pool.index[pool["model.width"] == w].tolist() for w in widths}  # by images_seen
    choices = {w: [r[i:j + 1] for i in range(len(r)) for j in range(max(i, len(r) - 2), len(r))]
               for w, r in rows.items()}
    for combo in itertools.product(*(choices[w] for w in widths)):
        yield held + [k for part in combo for k in part]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tables", nargs="+", help="TABLE:ACC_COLUMN")
    p.add_argument("--held-min-width", type=float, default=64)
    p.add_argument("--min-results", type=int, default=12, help="smallest design (default 12)")
    p.add_argument("--rho", type=float, default=-0.9, help="Spearman target (default -0.9)")
    p.add_argument("--screen-largest", type=int, default=150)
    p.add_argument("--screen-random", type=int, default=150)
    p.add_argument("--bootstrap", type=int, default=100)
    args = p.parse_args(argv)
    pool = load_pool(args.tables)
    y, acc = pool["final_val_loss"].to_numpy(), pool["acc"].to_numpy()
    total, passing = 0, []
    for rows in designs(pool, args.held_min_width):
        if len(rows) < args.min_results:
            continue
        total += 1
        rho = spearman(y[rows], acc[rows])
        if rho <= args.rho:
            passing.append((rho, rows))
    print(f"{len(pool)} results; {total} designs; {len(passing)} with Spearman <= {args.rho}")
    passing.sort(key=lambda item: -len(item[1]))
    random.seed(0)
    screened = passing[: args.screen_largest] + random.sample(
        passing, min(args.screen_random, len(passing)))
    n, d = pool["trunk_params"].to_numpy(float), pool["images_seen"].to_numpy(float)
    found = []
    for rho, rows in screened:
        fit = fit_joint(n[rows], d[rows], y[rows], bootstrap=args.bootstrap, n_jobs=1)
        value, (lo, hi) = fit.params["beta"], fit.ci()["beta"]
        found.append({"beta_rel": max(value - lo, hi - value) / value, "beta": value,
                      "E": fit.params["E"], "spearman": rho, "results": len(rows)})
    table = pd.DataFrame(found).sort_values("beta_rel")
    floor = table["E"] > 0.01
    print(f"screened {len(table)}: beta within ±50% with a floor (E > 0.01): "
          f"{int((floor & (table.beta_rel <= 0.5)).sum())}, without one: "
          f"{int((~floor & (table.beta_rel <= 0.5)).sum())}")
    print(table.head(15).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
