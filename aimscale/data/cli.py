"""`aimscale data fetch fashion-mnist|mnist [--dir PATH] [--url URL] [--no-apt] [--no-download]`.

Finds the dataset (explicit dir, $AIMSCALE_DATA_DIR, Debian's /usr/share/datasets, the cache) or
obtains it (apt-get as root, then a checksummed download), and prints the directory it is in.
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


def run(args: argparse.Namespace) -> int:
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
