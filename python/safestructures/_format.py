"""The file format's names, as the C++ core's vocabulary (include/safestructures/format.hpp) defines them: the
reserved metadata keys and tensor name, and every node kind with its tag and shape; and the names of the index of a
sharded save or a distributed checkpoint. The Python layer refers to a tag as ``TAG.NamedTuple`` and spells none of
these itself."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from . import _core

_FORMAT: dict[str, Any] = _core.FORMAT

# The metadata key holding the schema document; the tensor a schema too large for the header is spilled into.
SCHEMA_KEY: str = _FORMAT["schema_key"]
SPILL_TENSOR: str = _FORMAT["spill_tensor"]
# The two metadata keys of safestructures 1.0.0 files.
V1_SCHEMA_KEY: str = _FORMAT["v1_schema_key"]
V1_VERSION_KEY: str = _FORMAT["v1_version_key"]
# Keys a caller's metadata may not use.
RESERVED_METADATA_KEYS: frozenset[str] = frozenset({SCHEMA_KEY, V1_SCHEMA_KEY, V1_VERSION_KEY})
# The key, in a sharded save's index metadata and in every shard's, of the id of the save that wrote them.
SAVE_KEY: str = _FORMAT["save_id_key"]
# The index of a sharded checkpoint (the Hugging Face convention), and how the name of any index ends; its two
# objects, and the key of its metadata holding the bytes of tensor data.
INDEX_NAME = "model.safetensors.index.json"
INDEX_SUFFIX = ".index.json"
INDEX_METADATA = "metadata"
INDEX_WEIGHT_MAP = "weight_map"
TOTAL_SIZE_KEY = "total_size"
# The index metadata key of a PyTorch Distributed Checkpoint written through safestructures.distributed.
DCP_KEY = "safestructures_dcp"
# Keys of an index's metadata that a caller's metadata may not use (1.0.0's are refused as a single file refuses them).
RESERVED_INDEX_KEYS = (TOTAL_SIZE_KEY, SCHEMA_KEY, SAVE_KEY, V1_SCHEMA_KEY, V1_VERSION_KEY)
# The schema document's envelope: {"format": FORMAT_NAME, "version": VERSION, "root": ...}.
FORMAT_NAME: str = _FORMAT["format_name"]
VERSION: int = _FORMAT["version"]
# A tagged object's tag member ("$") and reference id member ("#").
TAG_MEMBER: str = _FORMAT["tag_member"]
ID_MEMBER: str = _FORMAT["id_member"]
# Wrapper fields that are not parts of paths or tensor names.
TRANSPARENT_FIELDS: tuple[str, ...] = _FORMAT["transparent_fields"]

_KINDS: dict[str, tuple[str, str, bool]] = _FORMAT["kinds"]
# Each kind's tag in the file by the core's enumerator: ``TAG.NamedTuple == "namedtuple"``, ``TAG.BigInt == "int"``.
TAG: Any = SimpleNamespace(**{kind_id: _KINDS[name][0] for kind_id, name in _FORMAT["ids"].items()})
# Each kind's name as messages write it, by the same enumerator (``KIND.BigInt == "bigint"``).
KIND: Any = SimpleNamespace(**_FORMAT["ids"])


def tags_shaped(shape: str) -> frozenset[str]:
    """The tags of the kinds of one shape: ``"sequence"``, ``"mapping"``, ``"record"``, ``"scalar"``, ``"tensor"``,
    ``"reference"``."""
    return frozenset(tag for tag, kind_shape, _ in _KINDS.values() if tag and kind_shape == shape)


# Tagged nodes whose items are an array of nodes, those whose items are [key, value] pairs, and those whose "type"
# field names a class (or a plugin's type).
SEQUENCE_TAGS: frozenset[str] = tags_shaped("sequence")
MAPPING_TAGS: frozenset[str] = tags_shaped("mapping")
NAMED_TAGS: frozenset[str] = frozenset(tag for tag, _, names_class in _KINDS.values() if names_class)
# Tagged nodes that name a tensor of the file: a tensor, or bytes stored in one.
TENSOR_TAGS: frozenset[str] = frozenset((TAG.Tensor, TAG.Bytes, TAG.ByteArray))

# The numpy dtype name of each safetensors dtype (what a tensor of it loads as in numpy), and its bits per element.
DTYPE_NUMPY_NAMES: dict[str, str] = {name: numpy_name for name, (_, numpy_name) in _core.DTYPES.items()}
DTYPE_BITS: dict[str, int] = {name: bits for name, (bits, _) in _core.DTYPES.items()}
