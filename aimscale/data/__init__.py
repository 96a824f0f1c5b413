"""The data stage: image sources, the pre-training stream, validation images, probe sets.

Entry points (imported lazily so that `aimscale.config` does not pull in torch):
`build_pretrain_data`, `build_val_images`, `check_data`, `load_labelled`, `LabelledSet`,
`fetch`, `DataError`.
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "build_pretrain_data": "aimscale.data.stream",
    "PretrainStream": "aimscale.data.stream",
    "build_val_images": "aimscale.data.validation",
    "check_data": "aimscale.data.validation",
    "load_labelled": "aimscale.data.labelled",
    "LabelledSet": "aimscale.data.labelled",
    "fetch": "aimscale.data.fetch",
    "DataError": "aimscale.data.errors",
    "PIXEL_MEAN": "aimscale.data.augment",
    "PIXEL_STD": "aimscale.data.augment",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'aimscale.data' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
