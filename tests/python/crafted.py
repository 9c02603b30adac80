"""Files crafted to attack the meaning of a structure (shared references, hashing, copies, views, keys, names), not
its bytes: each function returns the bytes of one small file. The regression tests load them in subprocesses with
time and memory budgets (test_crafted_meaning.py); scripts can write them out to measure a build by hand."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

SCHEMA_KEY = "__safestructures__"
SURROGATE = {"$": "str", "cp": [0xD800]}


def file_bytes(root: Any, tensors: dict[str, tuple[str, list[int], bytes]] | None = None) -> bytes:
    """A valid safetensors file whose schema's root is ``root``, holding ``tensors`` (name -> dtype, shape, bytes)."""
    schema = json.dumps({"format": "safestructures", "version": 2, "root": root}, separators=(",", ":"))
    return metadata_file({SCHEMA_KEY: schema}, tensors)


def metadata_file(metadata: dict[str, str], tensors: dict[str, tuple[str, list[int], bytes]] | None = None) -> bytes:
    """A safetensors file of ``metadata`` (the schema's JSON text as given: json.dumps cannot write a key twice) and
    ``tensors``."""
    header: dict[str, Any] = {"__metadata__": metadata}
    data = b""
    for name, (dtype, shape, raw) in (tensors or {}).items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def ref(n: int) -> dict[str, Any]:
    return {"$": "ref", "#": n}


def doubling(tag: str, levels: int, first_id: int = 1) -> dict[str, Any]:
    """A container of ``tag`` whose every level holds the level below twice (the second time as a ref): ``levels``
    levels of nesting expand to 2**levels leaves."""
    node: dict[str, Any] = {"$": tag, "#": first_id, "items": [1, 2]}
    for k in range(1, levels):
        node = {"$": tag, "#": first_id + k, "items": [node, ref(first_id + k - 1)]}
    return node


# --- 1. a lone surrogate where an error message echoes it ------------------------------------------------------------

def surrogate_scalar_dtype() -> bytes:
    return file_bytes([{"$": "npscalar", "dtype": SURROGATE, "v": 1}])


def surrogate_tensor_dtype() -> bytes:
    return file_bytes({"t": {"$": "tensor", "name": "t", "fw": "numpy", "dtype": SURROGATE}}, {"t": ("F32", [1], b"\0" * 4)})


def surrogate_torch_dtype() -> bytes:
    name = {"$": "str", "cp": [ord(c) for c in "torch."] + [0xD800]}
    return file_bytes({"t": {"$": "tensor", "name": "t", "fw": "numpy", "dtype": name}}, {"t": ("F32", [1], b"\0" * 4)})


def surrogate_in_every_field() -> bytes:
    """A lone surrogate in each string field a constructor reads (a type name, a path, a date, a device...)."""
    s = SURROGATE
    return file_bytes([
        {"$": "dataclass", "type": s, "fields": {}},
        {"$": "enum", "type": s, "name": s, "value": s},
        {"$": "path", "kind": s, "v": "x"},
        {"$": "date", "iso": s},
        {"$": "Decimal", "v": s},
        {"$": "UUID", "hex": s},
        {"$": "ZoneInfo", "key": s},
        {"$": "torch.dtype", "name": s},
        {"$": "torch.device", "type": s, "index": None},
        {"$": "defaultdict", "factory": s, "items": []},
        {"$": "object", "type": "x", "base": s, "value": 1},
        {"$": "plugin", "type": s, "value": 1},
    ])


# --- 2. hashing an expansion -------------------------------------------------------------------------------------------

def hashed_expansion(levels: int, position: str = "set") -> bytes:
    """A tuple of ``levels`` doubling levels used as a set item, a frozenset item, a dict key or an enum's value."""
    key = doubling("tuple", levels)
    if position == "set":
        root: Any = {"$": "set", "items": [key]}
    elif position == "frozenset":
        root = {"$": "frozenset", "items": [key]}
    elif position == "dict":
        root = {"$": "dict", "items": [[key, 1]]}
    elif position == "Counter":
        root = {"$": "Counter", "items": [[key, 1]]}
    else:
        raise ValueError(position)
    return file_bytes(root)


# --- 4 and 15. one tensor named by many nodes ---------------------------------------------------------------------------

def tensor_named_many_times(kind: str, nodes: int = 1000, size: int = 1 << 20) -> bytes:
    """``nodes`` schema nodes naming one tensor of ``size`` bytes, each of which a load would copy: bytes, bytearray, a
    big-endian view (``>i4``), an F4 tensor, or a plain tensor (which torch copies out of read-only bytes)."""
    if kind in ("bytes", "bytearray"):
        node: dict[str, Any] = {"$": kind, "tensor": "t"}
        tensors = {"t": ("U8", [size], b"\x01" * size)}
    elif kind == "big-endian":
        node = {"$": "tensor", "name": "t", "fw": "numpy", "dtype": ">i4"}
        tensors = {"t": ("I32", [size // 4], b"\x01" * size)}
    elif kind == "F4":
        node = {"$": "tensor", "name": "t", "fw": "numpy"}
        tensors = {"t": ("F4", [size * 2], b"\x11" * size)}
    elif kind == "plain":
        node = {"$": "tensor", "name": "t", "fw": "numpy"}
        tensors = {"t": ("F32", [size // 4], b"\0" * size)}
    else:
        raise ValueError(kind)
    return file_bytes([node] * nodes, tensors)


# --- 5. a zero-stride view over a tiny base -----------------------------------------------------------------------------

def expanded_view(shape: list[int], fw: str = "numpy") -> bytes:
    """A 4-byte tensor and a view of it with every stride 0 (what torch's expand() saves), of ``shape``."""
    base = {"$": "tensor", "name": "b", "fw": "torch"}
    view = {"$": "tensor", "storage": "b", "offset": 0, "shape": shape, "stride": [0] * len(shape), "fw": fw}
    return file_bytes({"base": base, "view": view}, {"b": ("F32", [1], struct.pack("<f", 1.5))})


# --- 6. keys that all hash alike -----------------------------------------------------------------------------------------

def colliding_keys(count: int, container: str = "dict") -> bytes:
    """``count`` distinct big ints ``k * (2**61 - 1)``, which all hash to 0, as dict keys or set items."""
    keys = [{"$": "int", "hex": hex(k * (2**61 - 1))} for k in range(1, count + 1)]
    if container == "set":
        return file_bytes({"$": "set", "items": keys})
    return file_bytes({"$": container, "items": [[k, 0] for k in keys]})


# --- 7. shared structure under a leaf, and in a tool's output --------------------------------------------------------------

def shared_lists(levels: int) -> bytes:
    """Lists nested ``levels`` deep, each holding the one below twice: 2**levels leaves, ``levels`` nodes."""
    return file_bytes({"data": doubling("list", levels)})


def shared_under_leaf(levels: int, leaf: str) -> bytes:
    """A doubling tuple under a leaf that describe() and inspect render (a slice, an unresolved enum's value, a dict
    key)."""
    shared = doubling("tuple", levels)
    if leaf == "slice":
        root: Any = {"s": {"$": "slice", "start": shared, "stop": None, "step": None}}
    elif leaf == "enum":
        root = {"e": {"$": "enum", "type": "m.Unknown", "name": "X", "value": shared}}
    elif leaf == "key":
        root = {"$": "dict", "items": [[shared, 1]]}
    else:
        raise ValueError(leaf)
    return file_bytes(root)


# --- 8. many leaves and keys that the lazy walks build --------------------------------------------------------------------

def many_leaves(count: int, node: Any) -> bytes:
    return file_bytes([node] * count)


def wrapped_chain(count: int, tag: str = "object") -> bytes:
    """A list of `count` object (or ext) nodes, each wrapping the one before it through a reference: a walk that asks
    each node for its children follows a chain as long as the node's position."""
    field = {"object": "value", "ext": "data"}[tag]
    nodes: list[Any] = [{"$": tag, "#": 1, "type": "T", field: []}]
    nodes += [{"$": tag, "#": k, "type": "T", field: ref(k - 1)} for k in range(2, count + 1)]
    return file_bytes(nodes)


def deep_and_wide(depth: int, count: int, leaf: Any = None) -> bytes:
    """`count` leaves (empty tuples unless `leaf` is given) at the bottom of lists nested `depth` levels: a walk that
    keeps each node's whole path holds depth times as many parts as the file has nodes."""
    leaf = {"$": "tuple", "items": []} if leaf is None else leaf
    bottom = json.dumps([leaf] * count, separators=(",", ":"))
    root = "[" * depth + bottom + "]" * depth  # past json.dumps's recursion limit
    schema = '{"format":"safestructures","version":2,"root":' + root + "}"
    text = json.dumps({"__metadata__": {SCHEMA_KEY: schema}}, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text) + -len(text) % 8) + text + b" " * (-len(text) % 8)


def many_tuple_keys(count: int) -> bytes:
    return file_bytes({"$": "dict", "items": [[{"$": "tuple", "items": [k]}, k] for k in range(count)]})


# --- 11. files the library itself writes ---------------------------------------------------------------------------------

def f6_tensor() -> bytes:
    return file_bytes({"t": {"$": "tensor", "name": "t", "fw": "numpy"}}, {"t": ("F6_E2M3", [4], b"\0" * 3)})


# --- 13. forged classes ------------------------------------------------------------------------------------------------------

def object_node(type_name: str, **fields: Any) -> bytes:
    return file_bytes({"$": "object", "type": type_name, **fields})


# --- 19. the readers written in Python: the 1.0.0 format -----------------------------------------------------------------

def v1_file_bytes(schema: Any) -> bytes:
    """A file in safestructures 1.0.0's format (its schema as JSON in the metadata, a dummy tensor named "null")."""
    metadata = {"_safestructures_schema_": json.dumps(schema, separators=(",", ":")), "_safestructures_schema_version_": "1.0.0"}
    header = {"__metadata__": metadata, "null": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"\0" * 8


def v1_colliding_keys(count: int, container: str = "dict") -> bytes:
    """A 1.0.0 set or dict of ``count`` distinct ints ``k * (2**61 - 1)``, which all hash to 0 (as in case 6)."""
    ints = [{"data_type": "int", "value": str(k * (2**61 - 1))} for k in range(count)]
    if container == "set":
        return v1_file_bytes({"data_type": "set", "value": ints})
    return v1_file_bytes({"data_type": "dict", "value": {str(k): {"data_type": "NoneType", "value": None} for k in range(count)},
                          "keys": {str(k): key for k, key in enumerate(ints)}})


# --- 20. a warning per object, under long keys ------------------------------------------------------------------------------

def changed_objects_under_long_keys(levels: int, key_length: int, count: int) -> bytes:
    """``count`` objects of dataclass ``__main__.P`` with fields x and y, under ``levels`` dicts whose keys are
    ``key_length`` characters long: a load given a P without y warns once per object, naming its path."""
    node: Any = [{"$": "dataclass", "type": "__main__.P", "fields": {"x": k, "y": k}} for k in range(count)]
    for level in range(levels):
        node = {f"{level:03}".ljust(key_length, "k"): node}
    return file_bytes(node)


# --- 26. names of one std::hash ----------------------------------------------------------------------------------------

def std_hash_colliding_names(count: int) -> list[str]:
    """``count`` distinct ASCII names of 24 bytes whose libstdc++ ``std::hash`` (MurmurHash-like with the fixed seed
    0xc70f6907) are all equal. Each 8-byte word w goes in as ``h = (h ^ mix(w)) * m`` with ``mix`` a bijection, so for
    two random words the third that brings ``h`` to the target is computed; a 264th of those are ASCII without NUL."""
    import numpy as np

    m = np.uint64((0xC6A4A793 << 32) + 0x5BD1E995)
    m_inverse = np.uint64(pow(int(m), -1, 1 << 64))
    shift = np.uint64(47)

    def mix(w: Any) -> Any:
        return (w * m ^ (w * m >> shift)) * m

    def unmix(v: Any) -> Any:
        v = v * m_inverse
        return (v ^ (v >> shift)) * m_inverse

    rng = np.random.default_rng(26)
    target = np.uint64(0x0123456789ABCDEF)
    names: list[str] = []
    with np.errstate(over="ignore"):
        start = np.uint64(0xC70F6907) ^ np.uint64(24) * m
        while len(names) < count:
            heads = rng.integers(ord("a"), ord("z") + 1, size=(1 << 21, 16), dtype=np.uint8)
            words = heads.view("<u8")
            h = ((start ^ mix(words[:, 0])) * m ^ mix(words[:, 1])) * m
            last = unmix(target * m_inverse ^ h).astype("<u8")
            tails = last.view(np.uint8).reshape(-1, 8)
            ascii_rows = np.nonzero(np.all((tails > 0) & (tails < 0x80), axis=1))[0]
            names.extend((heads[i].tobytes() + tails[i].tobytes()).decode() for i in ascii_rows)
    return sorted(set(names))[:count]


def plain_file_of_names(names: list[str]) -> bytes:
    """A plain safetensors file of empty float32 tensors by ``names``."""
    header = {name: {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for name in names}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


# --- 27. a numpy str array whose code units are no code points -------------------------------------------------------

def str_array_past_unicode(code_units: tuple[int, ...] = (0x61, 0x110000), dtype: str = "<U1") -> bytes:
    """A numpy str array stored as bytes (as a save stores one) whose UCS-4 code units are ``code_units``: past
    U+10FFFF, reading an element made numpy raise SystemError."""
    order = ">" if dtype.startswith(">") else "<"
    raw = struct.pack(f"{order}{len(code_units)}I", *code_units)
    width = int(dtype.lstrip("<>=U"))
    node = {"$": "tensor", "name": "t", "fw": "numpy", "dtype": dtype, "shape": [len(code_units) // width]}
    return file_bytes({"t": node}, {"t": ("U8", [len(raw)], raw)})


def str_scalar_past_unicode() -> bytes:
    """A numpy str scalar saved by its raw bytes (as a save stores a long double's) holding the code unit 0x110000."""
    raw = base64.b64encode(struct.pack("<I", 0x110000)).decode()
    return file_bytes({"s": {"$": "npscalar", "dtype": "<U1", "raw": {"$": "bytes", "b64": raw}}})


# --- 28. a member of the schema document twice, one of them spelled with escapes ---------------------------------------

RECORDING_KEY = "__safestructures_recording__"


def recording_bytes(schema: str) -> bytes:
    """A recording (its metadata's key marks it) whose schema is the JSON text ``schema``, as written."""
    return recording_bytes_with({}, schema)


def recording_bytes_with(tensors: dict[str, tuple[str, list[int], bytes]], schema: str) -> bytes:
    """recording_bytes() of a recording holding ``tensors``."""
    return metadata_file({RECORDING_KEY: "1", SCHEMA_KEY: schema}, tensors)


ENVELOPE = '{"format":"safestructures","version":2,'


def recording_with_two_roots() -> bytes:
    """Two records under "root" spelled with an escape, then two streams under "root" spelled plainly: loads read the
    first; a recorder continuing it read the second (the one its scan of the text finds) and wrote that back."""
    return recording_bytes(ENVELOPE + r'"\u0072oot":[[1],[2]],"root":{"s":[[3]],"t":[[4],[5],[6]]}}')


def recording_with_two_stream_lists() -> bytes:
    """Streams in pair form whose "items" comes twice, the first spelled with an escape."""
    return recording_bytes(ENVELOPE + r'"root":{"$":"dict","\u0069tems":[["s",[[1]]]],"items":[["$",[[2],[3]]]]}}')


def recording_with_a_stream_twice(pairs: bool = False) -> bytes:
    """Two streams named "s" (a dict's members, or its pairs): loads refuse the dict; a recorder continuing it merged
    them."""
    if pairs:
        return recording_bytes(ENVELOPE + '"root":{"$":"dict","items":[["s",[[3]]],["s",[[4],[5]]]]}}')
    return recording_bytes(ENVELOPE + '"root":{"s":[[3]],"s":[[4],[5]]}}')


# --- 29. a field of a tagged node twice --------------------------------------------------------------------------------

def tensor_field_twice() -> bytes:
    """A tensor node naming tensor "t", then "u" (whose own node follows): the core took the first name, the tensor's
    adapter (a dict of the fields) the last."""
    e = '{"format":"safestructures","version":2,"root":'
    schema = e + '{"a":{"$":"tensor","name":"t","fw":"numpy","name":"u"},"b":{"$":"tensor","name":"u","fw":"numpy"}}}'
    return metadata_file({SCHEMA_KEY: schema}, {"t": ("F32", [2], struct.pack("<2f", 1, 2)), "u": ("F32", [2], struct.pack("<2f", 3, 4))})


def scalar_field_twice() -> bytes:
    """A numpy scalar node whose dtype comes twice."""
    return metadata_file({SCHEMA_KEY: '{"format":"safestructures","version":2,"root":{"$":"npscalar","dtype":"int8","v":1,"dtype":"uint64"}}'})



# --- 31. a pointer to a spilled schema holding a root of its own -------------------------------------------------------

SPILL_TENSOR = "__safestructures_schema__"


def spilled_recording_with_a_root() -> bytes:
    """A recording whose schema is spilled into a tensor holding [[1], [2]], its pointer holding "root": [[9]] too:
    loads read the tensor; a recorder continuing it read the pointer's root, and wrote it back."""
    spilled = b'{"format":"safestructures","version":2,"root":[[1],[2]]}'
    pointer = f'{{"format":"safestructures","version":2,"spill":"{SPILL_TENSOR}","root":[[9]]}}'
    return metadata_file({RECORDING_KEY: "1", SCHEMA_KEY: pointer}, {SPILL_TENSOR: ("U8", [len(spilled)], spilled)})


# --- 32-35. classes rebuilt from a file's attributes, and plugins' values ----------------------------------------------------

def object_attributes(type_name: str, attrs: Any, **fields: Any) -> bytes:
    """An ``object`` node of class ``type_name`` whose attributes are ``attrs`` (names a save never writes: a
    property's, ``__dict__``, ``__class__``...)."""
    return object_node(type_name, **fields, attrs=attrs)


def stand_in_claiming(type_name: str, claimed: str) -> bytes:
    """A dict subclass ``type_name`` whose attributes set the name a load's stand-in keeps its class in to ``claimed``."""
    return object_node(type_name, base="dict", value={"role": "user"}, attrs={"__safestructures_type__": claimed})


def plugin_of_shared_lists(levels: int) -> bytes:
    """A plugin node whose value is ``levels`` doubling lists (see :func:`doubling`): 2**levels leaves, expanded."""
    return file_bytes({"$": "plugin", "type": "app.Unknown", "value": doubling("list", levels)})


def plugin_extra(extra: Any, type_name: str = "app.Unknown") -> bytes:
    """A plugin node of value 1 whose extra fields are ``extra`` (``{"value": 2}``: a name of the node's own)."""
    return file_bytes({"$": "plugin", "type": type_name, "value": 1, "extra": extra})


# --- 36. an index holding what JSON lacks ---------------------------------------------------------------------------------

def index_with(metadata_text: str, shard: str = "a.safetensors") -> bytes:
    """A Hugging Face folder's index whose metadata object is ``metadata_text`` as written (``{"total_size": NaN}``),
    mapping tensor ``a`` to ``shard``."""
    return ('{"metadata": ' + metadata_text + ', "weight_map": {"a": ' + json.dumps(shard) + "}}").encode()


def plain_shard(names: tuple[str, ...] = ("a",)) -> bytes:
    """A plain safetensors file of one F64 tensor of two zeros per name."""
    return metadata_file({}, {name: ("F64", [2], b"\0" * 16) for name in names})


# --- 38. text a terminal acts on ----------------------------------------------------------------------------------------

#: A class name that clears the screen, sets the terminal's title and breaks the line to forge a verdict.
TERMINAL_NAME = "app.X\x1b[2J\x1b]0;pwned\x07\nOK: fake line"


def terminal_escapes() -> bytes:
    """A dataclass of class :data:`TERMINAL_NAME`, and a tensor whose framework holds an escape sequence and a line
    break."""
    return file_bytes({"d": {"$": "dataclass", "type": TERMINAL_NAME, "fields": {}},
                       "t": {"$": "tensor", "name": "t", "fw": "numpy\x1b[2J\nOK: x"}}, {"t": ("F32", [1], b"\0" * 4)})


# --- 41. a view of F4 elements, which torch holds two to a byte --------------------------------------------------------

F4_CODES = bytes([0x21, 0x43, 0x65, 0x07])  # elements 0.5, 1, 1.5, 2, 3, 4, 6, 0 (element 0 in the low nibble)


def f4_view() -> bytes:
    """An F4 tensor of 8 elements and a view of elements 1 and 2 of it: numpy reads offset, shape and stride in F4
    elements; torch, holding them in pairs (float4_e2m1fn_x2), read pairs 1 and 2 (elements 2 to 5)."""
    view = {"$": "tensor", "storage": "t", "fw": "torch", "shape": [2], "offset": 1, "stride": [1]}
    return file_bytes({"t": {"$": "tensor", "name": "t", "fw": "torch"}, "v": view}, {"t": ("F4", [8], F4_CODES)})


def f4_strided() -> bytes:
    """An F4 tensor whose own node views 4 of its elements: torch read 4 pairs (8 elements)."""
    node = {"$": "tensor", "name": "t", "fw": "torch", "shape": [4], "offset": 0, "stride": [1]}
    return file_bytes({"t": node}, {"t": ("F4", [8], F4_CODES)})


# --- 42. bytes viewed under another dtype's name ------------------------------------------------------------------------

def logical_dtype_view(dtype: str = "<c16") -> bytes:
    """16 bytes stored as U8 whose node names numpy dtype ``dtype`` and views them with a stride: numpy refused the
    dtype that is not the stored one; torch ignored it and gave the bytes as uint8."""
    node = {"$": "tensor", "name": "t", "fw": "torch", "dtype": dtype, "shape": [1], "offset": 0, "stride": [1]}
    return file_bytes({"t": node}, {"t": ("U8", [16], bytes(range(16)))})


# --- 46. bool elements stored as bytes other than 0 and 1 ----------------------------------------------------------------

def bools_past_one(plain: bool = False) -> bytes:
    """A BOOL tensor holding the bytes 0, 1, 2, 255: numpy and torch read the last two as True, JAX and TensorFlow
    kept them (jnp.where gave 0 for the 2, tf.logical_not True for the 255)."""
    tensors = {"t": ("BOOL", [4], bytes([0, 1, 2, 255]))}
    return metadata_file({}, tensors) if plain else file_bytes({"t": {"$": "tensor", "name": "t", "fw": "numpy"}}, tensors)


def bools_past_one_as_bytes() -> bytes:
    """The same through numpy's dtype "|b1" over U8 bytes."""
    node = {"$": "tensor", "name": "t", "fw": "numpy", "dtype": "|b1", "shape": [2]}
    return file_bytes({"t": node}, {"t": ("U8", [2], bytes([1, 7]))})


# --- 63. a valid file's tensor that one framework cannot hold --------------------------------------------------------------

def tensor_beyond_numpy(kind: str) -> bytes:
    """A tensor numpy cannot hold (torch can): 65 dimensions (``"rank"``), a zero-size shape of 2**63 - 1 elements per
    row (``"wide"``), or 65 dimensions of a numpy dtype stored as bytes (``"logical"``)."""
    if kind == "logical":
        node = {"$": "tensor", "name": "t", "fw": "numpy", "dtype": "<c16", "shape": [1] * 65}
        return file_bytes({"t": node}, {"t": ("U8", [16], bytes(16))})
    shape, raw = ([1] * 65, bytes(4)) if kind == "rank" else ([0, 2**63 - 1], b"")
    return file_bytes({"t": {"$": "tensor", "name": "t", "fw": "numpy"}}, {"t": ("F32", shape, raw)})


def numpy_only_dtype(dtype: str = "<U2") -> bytes:
    """Two elements of a numpy dtype torch has no dtype for, stored as U8 bytes (as a save of such an array writes)."""
    import ml_dtypes  # noqa: F401  (names int4 for numpy)
    import numpy as np

    raw = np.zeros(2, dtype=dtype).tobytes()
    node = {"$": "tensor", "name": "t", "fw": "numpy", "dtype": dtype, "shape": [2]}
    return file_bytes({"t": node}, {"t": ("U8", [len(raw)], raw)})


# --- 64. a numpy scalar whose value its dtype cannot hold -----------------------------------------------------------------

def numpy_scalar(dtype: str, value: Any = None, raw: bytes | None = None) -> bytes:
    """An ``npscalar`` node of ``dtype`` holding ``value`` (``v``), or the bytes ``raw``."""
    node: dict[str, Any] = {"$": "npscalar", "dtype": dtype}
    if raw is None:
        node["v"] = value
    else:
        node["raw"] = {"$": "bytes", "b64": base64.b64encode(raw).decode()}
    return file_bytes([node])


# --- 80. a record's bytes that end the file as a recording's journal does ---------------------------------------------

def journal(header_text: bytes, room: int, data_size: int) -> bytes:
    """A recording's journal (docs/format.md section 9): ``header_text`` padded with spaces to ``room`` bytes, then
    the footer: the magic, the room and the data size, and the XXH3-64 of the padded text and the two numbers."""
    import xxhash

    padded = header_text.ljust(room, b" ")
    numbers = struct.pack("<QQ", room, data_size)
    return padded + b"SSRJRNL1" + numbers + struct.pack("<Q", xxhash.xxh3_64_intdigest(padded + numbers))


FORGED_HEADER = json.dumps({"__metadata__": {RECORDING_KEY: "1", "evil": "yes"}}).encode()


def journal_for(size: int, room: int = 8, header_text: bytes = FORGED_HEADER) -> bytes:
    """The journal of ``room`` bytes (``header_text`` in it) that readers take at the end of a file of ``size``
    bytes: its data size makes the file exactly prefix, room, data, journal."""
    return journal(header_text, room, size - 40 - 2 * room)


def recording_whose_record_spells_a_journal() -> bytes:
    """A committed recording of one record, ``{"blob": BYTES}``, whose bytes (its last) are a whole journal for the
    file's size, holding a header of no tensors whose metadata says ``"evil": "yes"``: loads took it for the
    recording's newer header."""
    schema = ENVELOPE + '"root":[{"blob":{"$":"bytes","tensor":"0.blob"}}]}'
    room = 128  # at most the header's size: the journal's data starts after its room, and ends where it begins
    blob = bytes(room + 32)
    size = len(recording_bytes_with({"0.blob": ("U8", [len(blob)], blob)}, schema))
    blob = journal_for(size, room)
    return recording_bytes_with({"0.blob": ("U8", [len(blob)], blob)}, schema)


# --- 94. a Decimal and a big int of one hash value in one set --------------------------------------------------------

#: Python hashes a number modulo this prime: x + k * HASH_MODULUS hashes as x does.
HASH_MODULUS = (1 << 61) - 1


def decimals_beside_a_big_int(bits: int, decimals: int = 31, sets: int = 1) -> bytes:
    """A list of ``sets`` sets, each holding the int ``2**bits + 12345`` in a 1-tuple (defined in the first set, then
    referenced) and ``decimals`` 1-tuples of Decimals of the int's hash value, none equal to it. A 1-tuple's hash is
    its item's, so Python compares the int's tuple with each Decimal's: a Decimal compares with an int by converting
    the int to decimal, which costs the square of its size (21 s at 4 million bits)."""
    big = (1 << bits) + 12345
    same_hash = big % HASH_MODULUS

    def items() -> list[Any]:
        return [{"$": "tuple", "items": [{"$": "Decimal", "v": str(same_hash + k * HASH_MODULUS)}]} for k in range(1, decimals + 1)]

    first = {"$": "set", "items": [{"$": "tuple", "#": 1, "items": [{"$": "int", "hex": hex(big)}]}] + items()}
    return file_bytes([first] + [{"$": "set", "items": [ref(1)] + items()} for _ in range(sets - 1)])


def frozensets_of_decimals_and_a_big_int(bits: int, sets: int = 1) -> bytes:
    """A list of ``sets`` sets, each holding two frozensets (defined in the first set, then referenced) of one hash
    value and 31 items each: one of 31 Decimals of the hash value of the int ``2**bits + 12345``, the other of that
    int and 15 pairs of ints whose hashes cancel (a frozenset's hash mixes its items' hashes by xor, and ``x`` and
    ``x + HASH_MODULUS`` hash alike). Python compares the two by looking the items of one up in the other until one
    is missing: a Decimal looked up meets the big int, which each set's comparison converts to decimal again."""
    big = (1 << bits) + 12345
    same_hash = big % HASH_MODULUS
    decimals = {"$": "frozenset", "#": 1, "items": [{"$": "Decimal", "v": str(same_hash + k * HASH_MODULUS)} for k in range(1, 32)]}
    pairs = [v for x in range(1, 16) for v in (x, x + HASH_MODULUS)]
    with_int = {"$": "frozenset", "#": 2, "items": [{"$": "int", "hex": hex(big)}] + pairs}
    return file_bytes([{"$": "set", "items": [decimals, with_int]}] + [{"$": "set", "items": [ref(1), ref(2)]} for _ in range(sets - 1)])


# --- round 10g: what Python's constructors cost and keep, given a crafted record's fields -----------------------------

def tagged_int(bits: int, low: int = 1) -> dict[str, Any]:
    """A tagged int of ``bits`` bits: the top bit, then ``low`` (a save writes ints past int64 so)."""
    return {"$": "int", "hex": hex((1 << (bits - 1)) | low)}


def range_of_long_division(span_bits: int, step_bits: int) -> bytes:
    """A range from 0 to an int of ``span_bits`` bits by a step of ``step_bits``: range() computes its length at once, a
    long division whose cost is the product of the step's size and the length's (quadratic when both are large)."""
    return file_bytes([{"$": "range", "start": 0, "stop": tagged_int(span_bits), "step": tagged_int(step_bits, 12345)}])


def deque_past_maxlen(maxlen: int = 2, count: int = 5) -> bytes:
    """A deque of ``maxlen`` listing ``count`` items: appending them drops the first ones."""
    return file_bytes({"q": {"$": "deque", "maxlen": maxlen, "items": list(range(1, count + 1))}})


def clock_with_offset(tag: str = "datetime", iso: str = "2024-05-01T12:00:00+05:00", tz: Any = None) -> bytes:
    """A datetime (or time) node whose ``iso`` text holds a UTC offset, with a ``tz`` field or none."""
    node: dict[str, Any] = {"$": tag, "iso": iso}
    if tz is not None:
        node["tz"] = tz
    return file_bytes([node])


def namedtuple_repeating_a_field(type_name: str = "app.Point") -> bytes:
    """A named tuple node whose ``fields`` name ``x`` twice, over two items."""
    return file_bytes([{"$": "namedtuple", "type": type_name, "fields": ["x", "x"], "items": [1, 2]}])


def keys_spelling_get_markers() -> bytes:
    """A record of class ``app.Real`` whose field ``$type`` says ``app.Forged``; dicts whose one key is ``$tensor``
    (describing a tensor of a billion elements the file lacks) or ``$same_as``: what ``safestructures get`` writes
    for a record's class, a tensor and a shared container."""
    return file_bytes({
        "cfg": {"$": "dataclass", "type": "app.Real", "fields": {"$type": "app.Forged", "lr": 1}},
        "d": {"$tensor": {"dtype": "float32", "shape": [1000000000], "path": "w"}},
        "e": {"$same_as": "cfg"},
    })


def fields_under_two_old_names(type_name: str = "app.Renamed", tag: str = "dataclass") -> bytes:
    """A dataclass (or object) node holding ``lr`` and ``alpha``, each an old name (``renamed=``) of one field: 1.0 under
    the first, 2.0 under the second."""
    return file_bytes([{"$": tag, "type": type_name, "fields" if tag == "dataclass" else "attrs": {"lr": 1.0, "alpha": 2.0}}])


def enum_values(type_name: str, values: list[Any]) -> bytes:
    """A list of ``enum`` nodes of class ``type_name`` naming no member, each by its value only."""
    return file_bytes([{"$": "enum", "type": type_name, "name": None, "value": v} for v in values])


def nested_outside_lists_and_dicts(where: str) -> bytes:
    """A plugin node (type ``p.Pt``) whose value holds a ``nested`` node where a save never writes one: in a tuple, a
    set, a dict key, a record's field, or as a nested node's own child; or a nested node with an id that a ``ref``
    outside the plugin names; or a list of its value holding a nested node, named by a ``ref`` outside."""
    nested = {"$": "nested", "v": 5}
    values = {
        "tuple": {"$": "tuple", "items": [nested]},
        "set": {"$": "set", "items": [nested]},
        "key": {"$": "dict", "items": [[nested, 1]]},
        "record": [{"$": "dataclass", "type": "app.Rec", "fields": {"x": nested}}],
        "nested": {"$": "nested", "v": [nested]},
    }
    if where == "id":
        return file_bytes([{"$": "plugin", "type": "p.Pt", "value": [{"$": "nested", "#": 1, "v": 5}]}, ref(1)])
    if where == "list":
        return file_bytes([{"$": "plugin", "type": "p.Pt", "value": [{"$": "list", "#": 1, "items": [nested]}]}, ref(1)])
    return file_bytes([{"$": "plugin", "type": "p.Pt", "value": values[where]}])


def objects_dropping_a_field(type_name: str, count: int, key: str = "f") -> bytes:
    """``{key: [count dataclass nodes of type_name]}``, each holding a field ``gone`` besides ``x``: a load warns once
    per object (each warning naming its path) that the class no longer declares it."""
    return file_bytes({key: [{"$": "dataclass", "type": type_name, "fields": {"x": 1, "gone": 2}} for _ in range(count)]})



# --- 121. a shared list named from many places, first met a thousand levels deep ---------------------------------------

def shared_under_a_deep_path(depth: int, refs: int, key: str = "k" * 60) -> bytes:
    """A list whose first item is dicts nested ``depth`` levels (each under ``key``) ending in a shared empty list,
    followed by ``refs`` references to that list: a description names its first place at each reference."""
    deep = ('{"' + key + '":') * depth + '{"$":"list","#":1,"items":[]}' + "}" * depth
    root = '{"$":"list","items":[' + ",".join([deep] + ['{"$":"ref","#":1}'] * refs) + "]}"
    schema = '{"format":"safestructures","version":2,"root":' + root + "}"
    text = json.dumps({"__metadata__": {SCHEMA_KEY: schema}}, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text) + -len(text) % 8) + text + b" " * (-len(text) % 8)
