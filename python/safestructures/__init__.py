"""safestructures: save and load nested Python data with tensors as valid safetensors files, safely.

Importing this package imports neither torch, tensorflow nor jax (nor numpy); support loads when first needed.
"""

from __future__ import annotations

from ._api import load, load_file, save, save_file
from ._errors import InvalidArgumentError, InvalidFileError, SafestructuresError, UnsupportedTypeError
from ._flat import load_metadata, load_tensors, save_tensors
from .frameworks import FrameworkNotAvailableError

__version__ = "2.0.0.dev0"

__all__ = [
    "FrameworkNotAvailableError",
    "InvalidArgumentError",
    "InvalidFileError",
    "SafestructuresError",
    "UnsupportedTypeError",
    "load",
    "load_file",
    "load_metadata",
    "load_tensors",
    "save",
    "save_file",
    "save_tensors",
]
