"""Run under torchrun by test_ddp (`ddp_rank_report.py REPORT_DIR OVERRIDES...`): train one run
in-process and write, per rank, `REPORT_DIR/rank<r>.json` with what the rank left behind and what
it wrote.

- `threads_before` / `threads_after`: native threads before the process group exists and after
  `train` returns (gloo worker threads of a group never freed can abort the interpreter at exit).
- `writes`: every file-system change under the run directory (open for writing, rename, unlink,
  truncate, mkdir, chmod), recorded by an audit hook, so "only rank 0 writes" can be checked.
"""

import json
import os
import sys
from pathlib import Path

from aimscale.config import compose
from aimscale.train import train

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_CHANGES = {"os.rename", "os.remove", "os.truncate", "os.mkdir", "os.chmod", "os.rmdir",
            "shutil.rmtree"}


def native_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def record_writes(root: Path, writes: list) -> None:
    root = str(root.resolve())

    def inside(path) -> bool:
        if isinstance(path, int):
            return False
        path = os.path.abspath(os.fsdecode(path))
        return path == root or path.startswith(root + os.sep)

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in mode for c in "wax+")) or (
                mode is None and flags & _WRITE_FLAGS
            )
            if writing and inside(path):
                writes.append(["open", os.fsdecode(path)])
        elif event in _CHANGES:  # os.rename (and os.replace): (source, target, ...)
            paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
            for path in filter(inside, paths):
                writes.append([event, os.fsdecode(path)])

    sys.addaudithook(hook)


if __name__ == "__main__":
    report_dir, overrides = Path(sys.argv[1]), sys.argv[2:]
    cfg = compose(overrides)
    writes: list = []
    record_writes(Path(cfg.run_dir), writes)
    before = native_threads()
    summary = train(cfg)
    after = native_threads()
    rank = int(os.environ["RANK"])
    report = {"rank": rank, "threads_before": before, "threads_after": after,
              "status": summary["status"], "writes": writes}
    (report_dir / f"rank{rank}.json").write_text(json.dumps(report))
