"""JAX arrays <-> safetensors tensors, through numpy (bfloat16 and the float8 types included)."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from .._errors import UnsupportedTypeError
from . import numpy as np_adapter
from ._common import converting

__all__ = ["array_entry", "from_numpy"]


def array_entry(value: Any, name: str, context: dict[str, Any]) -> tuple[Any, ...]:
    """Describe a jax.Array for the core writer, through its host value (exact dtype kept)."""
    stored, shape, data, fields = np_adapter.array_entry(np.asarray(value), name, context)
    fields["fw"] = "jax"
    return stored, shape, data, fields


def from_numpy(array: np.ndarray, fields: dict[str, Any], context: dict[str, Any]) -> Any:
    """A jax.Array holding a copy of `array` on the default device (charged to the load's budget first)."""
    if array.dtype.itemsize == 8 and array.dtype.kind in "iuf" or array.dtype.kind == "c" and array.dtype.itemsize == 16:
        if not jax.config.read("jax_enable_x64"):
            # JAX would silently narrow 64-bit values to 32 bits (2**40 becomes 0).
            raise UnsupportedTypeError(
                f"a {array.dtype} tensor needs JAX's 64-bit mode (jax.config.update('jax_enable_x64', True)); "
                "without it JAX would narrow the values; or load with framework='numpy'"
            )
    # A big-endian array (a numpy node saved with ">i4") is made native first: JAX only takes native byte order.
    array = np_adapter.converted(array, fields, context, "jax")
    with converting("jax", fields, array.dtype):
        return jax.device_put(array)
