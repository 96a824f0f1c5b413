"""ImageFolder trees in the ImageNet layout: `root/<class>/<name>.jpg|png|...`.

Class names are the sorted sub-directory names; labels are their indices. Files are decoded on
demand with PIL, so a corrupt file is found (and skipped by the caller) when it is first read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from aimscale.data.decode import decode_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


class ImageFolderSource:
    """Every image file under `root/<class>/` (recursively), in sorted order."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.class_names = sorted(
            entry.name for entry in os.scandir(self.root) if entry.is_dir()
        )
        files: list[str] = []
        labels: list[int] = []
        for label, name in enumerate(self.class_names):
            for dirpath, dirnames, filenames in os.walk(self.root / name):
                dirnames.sort()  # os.walk order is filesystem order; sort for a stable index
                for filename in sorted(filenames):
                    if filename.lower().endswith(IMAGE_SUFFIXES):
                        files.append(os.path.join(dirpath, filename))
                        labels.append(label)
        self.files = files
        self.labels = np.asarray(labels, dtype=np.int64)
        self.name = f"image-folder:{self.root}"

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int) -> np.ndarray | None:
        try:
            with open(self.files[i], "rb") as handle:
                data = handle.read()
        except OSError:
            return None
        return decode_image(data)
