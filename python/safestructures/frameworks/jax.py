"""JAX arrays <-> safetensors tensors, through numpy (bfloat16 and the float8 types included)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from .._errors import UnsupportedTypeError
from . import numpy as np_adapter

__all__ = ["array_entry", "builder"]


def array_entry(value: Any, name: str, context: dict[str, Any]) -> tuple[Any, ...]:
    """Describe a jax.Array for the core writer, through its host value (exact dtype kept)."""
    return np_adapter.array_entry(np.asarray(value), name, context, "jax")


def builder(array: np.ndarray, fields: dict[str, Any]) -> Callable[[np.ndarray], Any]:
    """What builds a jax.Array, on the default device, from a copy of `array` (in native byte order: all JAX takes)."""
    if array.dtype.itemsize == 8 and array.dtype.kind in "iuf" or array.dtype.kind == "c" and array.dtype.itemsize == 16:
        if not jax.config.read("jax_enable_x64"):
            # JAX would silently narrow 64-bit values to 32 bits (2**40 becomes 0).
            raise UnsupportedTypeError(
                f"a {array.dtype} tensor needs JAX's 64-bit mode (jax.config.update('jax_enable_x64', True)); "
                "without it JAX would narrow the values; or load with framework='numpy'"
            )
    return jax.device_put
