"""Progress on the console: a tqdm bar on a terminal, one plain line per logged row otherwise
(batch logs stay readable). Only rank 0 reports."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    def __init__(self, mode: str, total_steps: int, start_step: int, enabled: bool = True):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode = mode if enabled else "none"
        self._bar = None
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True)

    def step(self, step: int) -> None:
        if self._bar is not None:
            self._bar.update(step - self._bar.n)

    def row(self, row: dict[str, Any]) -> None:
        if self.mode == "none":
            return
        text = f"loss {row['loss']:.4f} lr {row['lr']:.2e} {row['images_per_s']:.0f} img/s"
        if "val_loss" in row:
            text += f" val_loss {row['val_loss']:.4f}"
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
        else:
            print(f"step {row['step']}: {text}", file=sys.stderr, flush=True)

    def message(self, text: str) -> None:
        if self.mode == "none":
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
