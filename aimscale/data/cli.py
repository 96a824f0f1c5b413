"""`aimscale data fetch|index`.

- `fetch fashion-mnist|mnist [--dir PATH] [--url URL] [--no-apt] [--no-download]`: finds the
  dataset (explicit dir, $AIMSCALE_DATA_DIR, Debian's /usr/share/datasets, the cache) or obtains
  it (apt-get as root, then a checksummed download), and prints the directory it is in.
- `index PATH [--out DIR] [--workers N]`: scans the tar shards of PATH (a directory or a glob;
  a dataset root with train/, val/, test/ sub-directories of shards indexes each) once and stores
  their index (see `aimscale.data.shard_index`), which every rank then memory-maps.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    fetch = sub.add_parser("fetch", help="find or obtain a dataset and print its directory")
    fetch.add_argument("dataset", choices=["fashion-mnist", "mnist"])
    fetch.add_argument("--dir", default=None, help="directory holding (or to receive) the files")
    fetch.add_argument("--url", default=None, help="base URL to download the four .gz files from")
    fetch.add_argument("--no-apt", action="store_true", help="never run apt-get")
    fetch.add_argument("--no-download", action="store_true", help="never download")
    fetch.add_argument("--verify", action="store_true",
                       help="also check the files' SHA-256 (known for fashion-mnist)")
    index = sub.add_parser("index", help="store the index of tar shards (read by every rank)")
    index.add_argument("path", help="directory of *.tar shards, a glob, or a dataset root with "
                                    "train/ val/ test/ shard directories")
    index.add_argument("--out", default=None,
                       help="index directory (default: PATH/aimscale-index); a source whose "
                            "path is this directory reads the index and its shards")
    index.add_argument("--workers", type=int, default=0, help="processes scanning shards")


def run(args: argparse.Namespace) -> int:
    if args.data_command == "index":
        return _index(args)
    return _fetch(args)


def _index(args: argparse.Namespace) -> int:
    import os
    import time

    from aimscale.data.errors import DataError
    from aimscale.data.tar_shards import build_index, shard_paths

    targets = [args.path]
    if os.path.isdir(args.path) and not shard_paths(args.path):
        targets = [os.path.join(args.path, split) for split in ("train", "val", "test")
                   if shard_paths(os.path.join(args.path, split))] or targets
    if args.workers < 0 or (args.out is not None and len(targets) > 1):
        print("aimscale data index: --workers must be >= 0, and --out names one index (index "
              "the split directories one at a time)", file=sys.stderr)
        return 2
    for target in targets:
        start = time.perf_counter()
        try:
            info = build_index(target, args.out, workers=args.workers)
        except DataError as err:
            print(f"aimscale data index: {err}", file=sys.stderr)
            return 2
        except OSError as err:
            print(f"aimscale data index: cannot write the index of {target}: {err}; pass "
                  "--out DIR to store it elsewhere", file=sys.stderr)
            return 1
        print(f"{info['directory']}: {info['num_samples']:,} samples in {info['num_shards']:,} "
              f"shards ({'labelled' if info['labelled'] else 'no labels'}), "
              f"{time.perf_counter() - start:.1f} s")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from aimscale.data import fetch as fetching
    from aimscale.data.errors import DataError

    def log(message: str) -> None:
        print(message, file=sys.stderr)

    try:
        directory = fetching.fetch(
            args.dataset,
            args.dir,
            allow_apt=not args.no_apt,
            allow_download=not args.no_download,
            url=args.url,
            log=log,
        )
    except DataError as err:
        print(f"aimscale data fetch: {err}", file=sys.stderr)
        return 1
    if args.verify:
        bad = fetching.verify(args.dataset, directory)
        if bad:
            print(f"aimscale data fetch: checksum mismatch in {directory}: {bad}; delete and "
                  "fetch again", file=sys.stderr)
            return 1
    print(directory)
    return 0
