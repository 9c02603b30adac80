"""The format's vocabulary for the Python layer, taken from the core (format.hpp, through ``_core.FORMAT``) rather than
spelled again: each kind's tag by the kind's C++ name (``TAG.NamedTuple == "namedtuple"``), the kinds of each shape,
and the file's reserved names."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from . import _core

_TABLE: dict[str, Any] = _core.FORMAT
# kind name -> (tag, shape, names a class, identifier)
_KINDS: dict[str, tuple[str, str, bool, str]] = _TABLE["kinds"]

#: The tag of each kind by its identifier (``TAG.Tensor``); "" for the plain JSON kinds.
TAG: Any = SimpleNamespace(**{ident: tag for tag, _shape, _named, ident in _KINDS.values()})
#: Tags whose content is a sequence of items, those whose items are [key, value] pairs, those naming a class.
SEQUENCE_TAGS = frozenset(tag for tag, shape, _named, _ident in _KINDS.values() if tag and shape == "sequence")
MAPPING_TAGS = frozenset(tag for tag, shape, _named, _ident in _KINDS.values() if tag and shape == "mapping")
NAMED_TAGS = frozenset(tag for tag, _shape, named, _ident in _KINDS.values() if named)
#: Tags of nodes that name a tensor of the file (a tensor, or bytes stored in one).
TENSOR_TAGS = frozenset((TAG.Tensor, TAG.Bytes, TAG.ByteArray))

#: The metadata key holding the schema, and the tensor a schema too large for the header is spilled into.
SCHEMA_KEY: str = _TABLE["schema_key"]
SPILL_TENSOR: str = _TABLE["spill_tensor"]
#: The two metadata keys of safestructures 1.0.0 files.
V1_SCHEMA_KEY: str = _TABLE["v1_schema_key"]
V1_VERSION_KEY: str = _TABLE["v1_version_key"]
