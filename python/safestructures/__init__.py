"""safestructures: save and load nested Python data with tensors as valid safetensors files, safely.

Importing this package imports neither torch, tensorflow nor jax (nor numpy); support loads when first needed.
"""

from __future__ import annotations

from ._api import load, load_file, save, save_file
from ._checkpoints import CheckpointManager
from ._errors import (
    FrameworkNotAvailableError,
    IntegrityError,
    InvalidArgumentError,
    InvalidFileError,
    SafestructuresError,
    SafestructuresWarning,
    UnknownTypeError,
    UnsupportedTypeError,
)
from ._flat import load_metadata, load_tensors, save_tensors
from ._lazy import Node, SafeFile, open
from ._records import NamedRecord, Record
from ._recorder import Recorder, Stream
from ._recorder_hooks import record_module
from ._registry import register
from .plugins import DataProcessor, TensorProcessor

__version__ = "2.0.0.dev0"

__all__ = [
    "CheckpointManager",
    "DataProcessor",
    "FrameworkNotAvailableError",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidFileError",
    "NamedRecord",
    "Node",
    "Record",
    "Recorder",
    "SafeFile",
    "SafestructuresError",
    "SafestructuresWarning",
    "Stream",
    "TensorProcessor",
    "UnknownTypeError",
    "UnsupportedTypeError",
    "load",
    "load_file",
    "load_metadata",
    "load_tensors",
    "open",
    "record_module",
    "register",
    "save",
    "save_file",
    "save_tensors",
]
