"""The file format's names, as the C++ core's vocabulary (include/safestructures/format.hpp) defines them: the
reserved metadata keys and tensor name, and every node kind with its name and tag; the members of tensor and bytes
nodes; and the names of the index of a sharded save or a distributed checkpoint. The Python layer refers to a tag as
``TAG.NamedTuple`` and to a member as ``FIELD.storage``, and spells none of these itself."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace
from typing import Any

from . import _core
from ._errors import InvalidFileError, quote

_FORMAT: dict[str, Any] = _core.FORMAT

# The metadata key holding the schema document; the tensor a schema too large for the header is spilled into.
SCHEMA_KEY: str = _FORMAT["schema_key"]
SPILL_TENSOR: str = _FORMAT["spill_tensor"]
# The metadata key marking a recording (safestructures.Recorder), and the recording layout's version it holds.
RECORDING_KEY: str = _FORMAT["recording_key"]
RECORDING_VERSION: str = _FORMAT["recording_version"]
# The tensor of zeros a recording's header grows into (docs/format.md section 9): not part of its structure.
RECORDING_PADDING: str = _FORMAT["recording_padding"]
# The two metadata keys of safestructures 1.0.0 files.
V1_SCHEMA_KEY: str = _FORMAT["v1_schema_key"]
V1_VERSION_KEY: str = _FORMAT["v1_version_key"]
# The key, in a sharded save's index metadata and in every shard's, of the id of the save that wrote them.
SAVE_KEY: str = _FORMAT["save_id_key"]
# The metadata key of the checksums saved with the data (in a file, and in a sharded save's index).
CHECKSUMS_KEY: str = _FORMAT["checksums_key"]
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
RESERVED_INDEX_KEYS = (TOTAL_SIZE_KEY, SCHEMA_KEY, SAVE_KEY, CHECKSUMS_KEY, V1_SCHEMA_KEY, V1_VERSION_KEY)

# The member of a tagged node holding its tag.
TAG_MEMBER: str = _FORMAT["tag_member"]
# The member of a tagged node holding its reference id (defined on the node, referred to by a ref node).
ID_MEMBER: str = _FORMAT["id_member"]

_KINDS: dict[str, tuple[str, str]] = _FORMAT["kinds"]
# Each kind's tag in the file by the core's enumerator: ``TAG.NamedTuple == "namedtuple"``, ``TAG.BigInt == "int"``.
TAG: Any = SimpleNamespace(**{kind_id: tag for kind_id, (_, tag) in _KINDS.items()})
# Each kind's name as messages write it, by the same enumerator (``KIND.BigInt == "bigint"``).
KIND: Any = SimpleNamespace(**{kind_id: name for kind_id, (name, _) in _KINDS.items()})
# Tagged nodes that name a tensor of the file: a tensor, or bytes stored in one.
TENSOR_TAGS: frozenset[str] = frozenset((TAG.Tensor, TAG.Bytes, TAG.ByteArray))
# Tagged nodes of torch's own values, which come back as records where torch is not imported.
TORCH_VALUE_TAGS: frozenset[str] = frozenset((TAG.TorchDtype, TAG.TorchDevice, TAG.TorchSize))


# The members of tensor and bytes nodes (docs/format.md sections 5.2 and 5.4) and the member naming a record's class,
# by what each holds, as the core's vocabulary names them: ``FIELD.storage == "storage"``, ``FIELD.framework == "fw"``.
# Other kinds' members of the same names (an enum's name, a timezone's offset) are these words too; a record's own
# members (``fields``, ``items``, ``value``...) are the type policy's (_registry.py).
FIELD: Any = SimpleNamespace(**_FORMAT["fields"])


# The members that name a tensor of the file: a tensor's data, a view's storage, long bytes' data.
TENSOR_NAME_FIELDS = (FIELD.name, FIELD.storage, FIELD.tensor)

# The numpy dtype name of each safetensors dtype (what a tensor of it loads as in numpy), and its bits per element.
DTYPE_NUMPY_NAMES: dict[str, str] = {name: numpy_name for name, (_, numpy_name) in _core.DTYPES.items()}
DTYPE_BITS: dict[str, int] = {name: bits for name, (bits, _) in _core.DTYPES.items()}


def file_json(text: str | bytes, *, standard_numbers: bool = True) -> Any:
    """JSON that a file holds (an index, a 1.0.0 schema), read as the core reads a schema: an object holding a key
    twice is refused (InvalidFileError, code ``DuplicateKey``), since json would take the last of the two and another
    reader the first. With ``standard_numbers``, ``NaN``, ``Infinity`` and numbers past a double's range, which
    Python's json takes and JSON lacks (other readers of an index refuse them), raise ValueError too; a 1.0.0 schema
    keeps them, since 1.0.0's json.dumps wrote them for a plugin's float fields. Raises what ``json.loads`` raises
    for anything else."""
    if not standard_numbers:
        return json.loads(text, object_pairs_hook=_each_key_once)
    return json.loads(text, object_pairs_hook=_each_key_once, parse_constant=_not_json, parse_float=_finite)


def _each_key_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise InvalidFileError(f"a JSON object holds the key {quote(key)} twice", code="DuplicateKey")
            seen.add(key)
    return members


def _not_json(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text if len(text) <= 40 else text[:37] + '...'} is past the range of a double")
    return value
