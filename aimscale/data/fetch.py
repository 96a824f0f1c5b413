"""Find or obtain the MNIST-layout datasets (Fashion-MNIST is the default pre-training data).

Lookup order for a kind (`fashion-mnist` or `mnist`):
1. an explicit directory (`aimscale data fetch fashion-mnist --dir PATH`);
2. `$AIMSCALE_DATA_DIR` itself or `$AIMSCALE_DATA_DIR/<kind>`;
3. the Debian location (`/usr/share/datasets/fashion-mnist`, package `dataset-fashion-mnist`);
4. the download cache `~/.cache/aimscale/<kind>`.
A directory counts when it holds the four files (`.gz` or not). `fetch` then tries, in order,
`apt-get install dataset-fashion-mnist` (only as root with apt-get present) and a download from a
configurable base URL, verified against the SHA-256 of the *decompressed* files, so a re-compressed
copy (Debian's) and the upstream `.gz` both pass.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from aimscale.data.errors import DataError

ENV_VAR = "AIMSCALE_DATA_DIR"
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class DatasetInfo:
    debian_dir: str | None
    debian_package: str | None
    url: str  # base URL; the files are <url>/<name>.gz
    sha256: dict[str, str]  # of the decompressed files; empty: not verified


DATASETS = {
    "fashion-mnist": DatasetInfo(
        debian_dir="/usr/share/datasets/fashion-mnist",
        debian_package="dataset-fashion-mnist",
        url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
        # measured on Debian's dataset-fashion-mnist (same content as the upstream release)
        sha256={
            "train-images-idx3-ubyte":
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte":
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte":
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte":
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    ),
    # no Debian package and no checksum measured here: downloads are checked for shape only
    "mnist": DatasetInfo(None, None, "https://ossci-datasets.s3.amazonaws.com/mnist", {}),
}


def cache_dir(kind: str) -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aimscale" / kind


def has_files(directory: Path) -> bool:
    return all(
        (directory / name).is_file() or (directory / f"{name}.gz").is_file() for name in FILES
    )


def candidate_dirs(kind: str, directory: str | Path | None = None) -> list[Path]:
    """Where `kind` is looked for, in order."""
    found = []
    if directory is not None:
        found.append(Path(directory).expanduser())
    env = os.environ.get(ENV_VAR)
    if env:
        found += [Path(env).expanduser(), Path(env).expanduser() / kind]
    info = _info(kind)
    if info.debian_dir:
        found.append(Path(info.debian_dir))
    found.append(cache_dir(kind))
    return found


def find(kind: str, directory: str | Path | None = None) -> Path | None:
    """The first candidate directory holding the four files, or None."""
    return next((d for d in candidate_dirs(kind, directory) if has_files(d)), None)


def locate_idx_dir(kind: str) -> Path:
    """The directory of `kind` for a source without a path; DataError with instructions if none."""
    found = find(kind)
    if found is None:
        raise DataError(how_to_get(kind))
    return found


def how_to_get(kind: str) -> str:
    info = _info(kind)
    looked = ", ".join(str(d) for d in candidate_dirs(kind))
    steps = [f"`aimscale data fetch {kind}` (downloads from {info.url} when online)"]
    if info.debian_package:
        steps.insert(0, f"`sudo apt-get install {info.debian_package}` (Debian/Ubuntu)")
    steps.append(
        f"put {', '.join(n + '.gz' for n in FILES)} in a directory and pass "
        f"`--dir PATH`, set {ENV_VAR}=PATH, or set data.sources[i].path=PATH"
    )
    return f"{kind} not found (looked in {looked}); get it with one of: " + "; or ".join(steps)


def fetch(
    kind: str,
    directory: str | Path | None = None,
    *,
    allow_apt: bool = True,
    allow_download: bool = True,
    url: str | None = None,
    log=print,
) -> Path:
    """Find `kind` or obtain it; return its directory. DataError says how to get it otherwise."""
    found = find(kind, directory)
    if found is not None:
        return found
    info = _info(kind)
    if allow_apt and info.debian_package and _can_apt():
        log(f"installing {info.debian_package} with apt-get")
        try:
            subprocess.run(["apt-get", "update"], check=True)
            subprocess.run(["apt-get", "install", "-y", info.debian_package], check=True)
        except (subprocess.CalledProcessError, OSError) as err:
            log(f"apt-get failed ({err}); trying a download")
        else:
            found = find(kind, directory)
            if found is not None:
                return found
    if allow_download:
        target = Path(directory).expanduser() if directory is not None else cache_dir(kind)
        try:
            return download(kind, target, url or info.url, log=log)
        except OSError as err:
            raise DataError(f"download of {kind} failed ({err}). {how_to_get(kind)}") from None
    raise DataError(how_to_get(kind))


def download(kind: str, target: Path, base_url: str, log=print) -> Path:
    """Download the four `.gz` files into `target` and verify their decompressed SHA-256.

    The tests run this against a `file://` mirror; the real network download cannot be tested
    offline, so the default URLs are checked only by users.
    """
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        dest = target / f"{name}.gz"
        if dest.is_file():
            continue
        log(f"downloading {base_url}/{name}.gz")
        partial = dest.with_suffix(".gz.part")
        with urllib.request.urlopen(f"{base_url}/{name}.gz", timeout=60) as response:
            with open(partial, "wb") as handle:
                shutil.copyfileobj(response, handle)
        os.replace(partial, dest)
    bad = verify(kind, target)
    if bad:
        for name in bad:
            (target / f"{name}.gz").unlink(missing_ok=True)
        raise DataError(f"checksum mismatch for {bad} from {base_url}; the files were removed")
    return target


def verify(kind: str, directory: str | Path) -> list[str]:
    """Names of the files whose decompressed SHA-256 differs from the known one."""
    directory = Path(directory)
    bad = []
    for name, expected in _info(kind).sha256.items():
        path = directory / f"{name}.gz"
        opener = gzip.open if path.is_file() else open
        path = path if path.is_file() else directory / name
        digest = hashlib.sha256()
        try:
            with opener(path, "rb") as handle:
                for chunk in iter(lambda h=handle: h.read(1 << 20), b""):
                    digest.update(chunk)
        except (OSError, EOFError):
            bad.append(name)
            continue
        if digest.hexdigest() != expected:
            bad.append(name)
    return bad


def _info(kind: str) -> DatasetInfo:
    if kind not in DATASETS:
        raise DataError(f"cannot fetch {kind!r}; fetchable datasets: {sorted(DATASETS)}")
    return DATASETS[kind]


def _can_apt() -> bool:
    return shutil.which("apt-get") is not None and hasattr(os, "geteuid") and os.geteuid() == 0
