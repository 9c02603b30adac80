"""The names a safestructures file reserves (format.md sections 5 and 8), spelled here and nowhere else in Python.

Constants only: every module that reads or writes a file, a sharded save's index or a distributed checkpoint's index
takes the names from here.
"""

from __future__ import annotations

#: The metadata key holding the schema document: in a file's ``__metadata__``, and in a sharded save's index.
SCHEMA_KEY = "__safestructures__"
#: The tensor holding a schema too large for the header (format.md 5.1): part of the file, not of the data.
SPILL_TENSOR = "__safestructures_schema__"
#: The key, in a sharded save's index metadata and in every shard's, of the id of the save that wrote them.
SAVE_KEY = "__safestructures_save__"
#: The metadata keys of a file written by safestructures 1.0.0: its schema, and the version of that schema.
V1_SCHEMA_KEY = "_safestructures_schema_"
V1_VERSION_KEY = "_safestructures_schema_version_"

#: The index of a sharded checkpoint (the Hugging Face convention), and how the name of any index ends.
INDEX_NAME = "model.safetensors.index.json"
INDEX_SUFFIX = ".index.json"
#: An index's two objects, and the key of its metadata that holds the bytes of tensor data.
INDEX_METADATA = "metadata"
INDEX_WEIGHT_MAP = "weight_map"
TOTAL_SIZE_KEY = "total_size"
#: The index metadata key of a PyTorch Distributed Checkpoint written through safestructures.distributed.
DCP_KEY = "safestructures_dcp"

#: Keys of an index's metadata that a caller's metadata may not use (1.0.0's are refused as a single file refuses them).
RESERVED_INDEX_KEYS = (TOTAL_SIZE_KEY, SCHEMA_KEY, SAVE_KEY, V1_SCHEMA_KEY, V1_VERSION_KEY)
