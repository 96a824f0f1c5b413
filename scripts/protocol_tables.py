"""Write the synthetic tables the README's protocol examples run on (known truth, from the test
generators): iso.csv (an IsoFLOP sweep with α ≠ β on a 2-decade grid, two configurations) and
ladder.csv (a 20-run model ladder, 40 checkpoints each).

    python scripts/protocol_tables.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "analysis"))

from synth import CHINCHILLA  # noqa: E402
from synth_ladder import ladder_table  # noqa: E402
from test_isoflop_window import wide_sweep  # noqa: E402


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    c, n, loss = wide_sweep(noise=0.002, seed=3)
    skewed = pd.DataFrame({"config": "skewed", "C": c, "params": n, "tokens": c / (6 * n),
                           "loss": loss})
    c2, n2, loss2 = wide_sweep(noise=0.002, seed=4, p=CHINCHILLA)
    other = pd.DataFrame({"config": "chinchilla", "C": c2, "params": n2, "tokens": c2 / (6 * n2),
                          "loss": loss2})
    pd.concat([skewed, other], ignore_index=True).to_csv(out / "iso.csv", index=False)
    ladder_table().to_csv(out / "ladder.csv", index=False)
    print(f"wrote {out / 'iso.csv'} and {out / 'ladder.csv'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
