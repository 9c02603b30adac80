"""Regenerates the seed corpora under tests/fuzz/corpus/ (committed): small valid files written with the project's own
API, plus a few hand-made edge cases. Run from the repository root: .venv/bin/python tests/fuzz/make_corpus.py"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import fractions
import json
import shutil
import struct
import tempfile
import uuid
from pathlib import Path

import numpy as np
import safestructures as ss

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
V1_FILES = HERE.parent / "data" / "v1"


def raw(header: str | dict, data: bytes = b"") -> bytes:
    """A safetensors file from a header (JSON text, written as is) and a data buffer."""
    text = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    encoded = text.encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


def schema_of(file: bytes) -> str:
    n = struct.unpack("<Q", file[:8])[0]
    return json.loads(file[8 : 8 + n])["__metadata__"]["__safestructures__"]


def plain_file(tensors: dict, metadata: dict[str, str] | None = None) -> bytes:
    """A plain safetensors file written by save_tensors (which only writes to a path)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plain.safetensors"
        ss.save_tensors(tensors, path, metadata)
        return path.read_bytes()


def spilled(root: object) -> bytes:
    """A structured file whose schema lives in the __safestructures_schema__ tensor (the writer only spills schemas
    larger than the 100 MB header limit, so this one is assembled by hand)."""
    document = json.dumps({"format": "safestructures", "version": 2, "root": root}, separators=(",", ":")).encode()
    pointer = '{"format":"safestructures","version":2,"spill":"__safestructures_schema__"}'
    header = {
        "__metadata__": {"__safestructures__": pointer},
        "__safestructures_schema__": {"dtype": "U8", "shape": [len(document)], "data_offsets": [0, len(document)]},
        "t": {"dtype": "U8", "shape": [2], "data_offsets": [len(document), len(document) + 2]},
    }
    return raw(header, document + b"\x01\x02")


@dataclasses.dataclass
class Point:
    x: int
    y: list


class Color(enum.Enum):
    RED = 1


Pair = collections.namedtuple("Pair", "a b")


def structured_samples() -> dict[str, bytes]:
    grid = np.arange(12, dtype=np.float32).reshape(3, 4)
    cycle: list = [1]
    cycle.append(cycle)
    shared = {"k": "v"}
    return {
        "basic": ss.save({"a": [1, 2.5, "x", None, True, (1, 2), {3}, b"hi"], "t": grid}, metadata={"user": "meta"}),
        "containers": ss.save(
            [
                collections.OrderedDict(a=1),
                collections.defaultdict(list, {"k": [1]}),
                collections.Counter("aab"),
                collections.deque([1, 2], maxlen=5),
                frozenset({1}),
                bytearray(b"ab"),
                {1: "int key", (2, 3): "tuple key"},
            ]
        ),
        "refs": ss.save({"cycle": cycle, "a": shared, "b": shared}),
        "numbers": ss.save([2**70, -(2**64), float("nan"), float("-inf"), -0.0, 5e-324, 1e308, 1 + 2j]),
        "objects": ss.save(
            [
                Point(1, [2]),
                Color.RED,
                Pair(1, 2),
                datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
                datetime.timedelta(1, 2, 3),
                decimal.Decimal("1.5"),
                fractions.Fraction(1, 3),
                uuid.UUID(int=5),
                range(3),
                slice(1, None),
                Ellipsis,
            ]
        ),
        "tensors": ss.save(
            {
                "u8": np.arange(3, dtype=np.uint8),
                "i64": np.array([[-1, 2]], dtype=np.int64),
                "f16": np.ones(2, dtype=np.float16),
                "bool": np.array([True, False]),
                "c64": np.array([1j], dtype=np.complex64),
                "scalar": np.float64(3.0),
                "empty": np.zeros((2, 0), dtype=np.int32),
                "bytes": b"x" * 80,  # stored as a U8 tensor
            }
        ),
    }


def torch_views() -> bytes | None:
    try:
        import torch
    except ImportError:
        return None
    t = torch.arange(12.0).reshape(3, 4)
    return ss.save({"t": t, "v": t[:, 1::2], "w": t.T})


def recording(schema: str, tensors: dict[str, tuple[str, list[int], bytes]], trailing: bytes = b"", room: int = 0) -> bytes:
    """A committed recording (docs/format.md section 9) of ``tensors`` whose structure is ``schema``, its header
    padded to a room of a multiple of 8 (at least ``room``), then ``trailing`` bytes (data appended since the
    commit)."""
    header: dict = {"__metadata__": {"__safestructures_recording__": "1", "__safestructures__": schema}}
    data = b""
    for name, (dtype, shape, content) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(content)]}
        data += content
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * max(-len(text) % 8, room - len(text))
    return struct.pack("<Q", len(text)) + text + data + trailing


def journal(text: bytes, room: int, data_size: int) -> bytes:
    """A recording's journal: ``text`` padded to ``room``, the magic, the room and data size, their XXH3-64."""
    import xxhash

    padded = text.ljust(room, b" ")
    numbers = struct.pack("<QQ", room, data_size)
    return padded + b"SSRJRNL1" + numbers + struct.pack("<Q", xxhash.xxh3_64_intdigest(padded + numbers))


def recording_samples() -> dict[str, bytes]:
    """fuzz_recording's seeds: recordings of each root form, with a padding, trailing data, a journal whole after a
    torn header or for a grown room, a record spelling a journal."""
    env = '{"format":"safestructures","version":2,"root":'
    x = ("F32", [2], struct.pack("<2f", 1, 2))
    two = recording(env + '[{"x":{"$":"tensor","name":"0.x"}},{"$":"list","#":1,"items":[1,{"$":"ref","#":1}]}]}', {"0.x": x})
    out = {
        "list.safetensors": two,
        "padded.safetensors": recording(env + '[{"$":"list","#":1,"items":[{"$":"tensor","name":"0.x"}]}]}',
                                        {"__safestructures_padding__": ("U8", [64], bytes(64)), "0.x": x}),
        "streams.safetensors": recording(env + '{"s":[1,2],"t":[[{"$":"tensor","name":"t.0.x"}]]}}', {"t.0.x": x}),
        "pairs.safetensors": recording(env + '{"$":"dict","items":[["$",[[1]]],["s",[2]]]}}', {}),
        "trailing.safetensors": recording(env + "[1]}", {}, b"\x01" * 24),
    }
    # A commit cut after its journal: the header in place torn (its first bytes new), the journal whole.
    old = recording(env + '[{"x":{"$":"tensor","name":"0.x"}}]}', {"0.x": x}, room=512)
    new = recording(env + '[{"x":{"$":"tensor","name":"0.x"}},{"y":{"$":"tensor","name":"1.y"}}]}',
                    {"0.x": x, "1.y": ("U8", [3], b"abc")}, room=512)
    data = new[8 + 512:]
    torn = new[:8 + 16] + old[8 + 16:8 + 512] + data
    out["torn_with_journal.safetensors"] = torn + journal(new[8:8 + 512], 512, len(data))
    # A record whose bytes spell a journal for the file's size (readers take the header in place).
    blob = bytes(64 + 32)
    schema = env + '[{"b":{"$":"bytes","tensor":"0.b"}}]}'
    size = len(recording(schema, {"0.b": ("U8", [len(blob)], blob)}))
    blob = journal(b'{"__metadata__":{"__safestructures_recording__":"1"}}', 64, size - 40 - 128)
    out["record_spelling_a_journal.safetensors"] = recording(schema, {"0.b": ("U8", [len(blob)], blob)})
    return out


def main() -> None:
    samples = structured_samples()
    views = torch_views()
    plain = plain_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, 2], dtype=np.int16)})
    spill = spilled({"a": [1, {"$": "tensor", "name": "t", "fw": "numpy"}]})

    container = {
        "plain.safetensors": plain,
        "structured.safetensors": samples["basic"],
        "tensors.safetensors": samples["tensors"],
        "empty.safetensors": raw("{}"),
        "metadata_only.safetensors": plain_file({}, {"k": "v", "": "empty key"}),
        "metadata_null.safetensors": raw('{"__metadata__":null,"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\x07"),
        "sub_byte.safetensors": raw(
            '{"f4":{"dtype":"F4","shape":[2],"data_offsets":[0,1]},"f6":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[1,4]}}',
            b"\x12\x34\x56\x78",
        ),
        "escaped_names.safetensors": raw(
            '{"\\u00e9\\n\\"q\\"":{"dtype":"I8","shape":[],"data_offsets":[1,2]},"z":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
            b"\x01\x02",
        ),
        "zero_size_padded.safetensors": raw(
            '{"a":{"dtype":"F64","shape":[0,3],"data_offsets":[0,0]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}      ',
            b"\x80\x3f",
        ),
    }
    schema = {
        "basic.json": schema_of(samples["basic"]).encode(),
        "refs.json": schema_of(samples["refs"]).encode(),
        "numbers.json": schema_of(samples["numbers"]).encode(),
        "objects.json": schema_of(samples["objects"]).encode(),
        "json_numbers.json": b'[-0,-0.0,0.1,1e308,5e-324,1E-400,-9223372036854775808,9223372036854775807,123456789012345678]',
        "json_strings.json": b'{"":"\\u0000\\ud83d\\ude00\\t\\"\\\\","\xc3\xa9":"\xf0\x9f\x98\x80","$":"x","$":"dup"}',
        "deep.json": b"[" * 60 + b"{}" + b"]" * 60,
        "structured.safetensors": samples["containers"],
        "spilled.safetensors": spill,
        "bad_version.safetensors": raw({"__metadata__": {"__safestructures__": '{"format":"safestructures","version":3,"root":1}'}}),
    }
    load = {
        "basic.safetensors": samples["basic"],
        "containers.safetensors": samples["containers"],
        "refs.safetensors": samples["refs"],
        "numbers.safetensors": samples["numbers"],
        "objects.safetensors": samples["objects"],
        "tensors.safetensors": samples["tensors"],
        "plain.safetensors": plain,
        "spilled.safetensors": spill,
    }
    # Schema documents: fuzz_load also wraps its input into a file holding tensors "t" (F32 [3, 4]) and "u8" (U8 [3]).
    load["doc_basic.json"] = schema_of(samples["basic"]).encode()
    load["doc_containers.json"] = schema_of(samples["containers"]).encode()
    load["doc_objects.json"] = schema_of(samples["objects"]).encode()
    load["doc_numbers_refs.json"] = json.dumps(
        {"format": "safestructures", "version": 2,
         "root": [json.loads(schema_of(samples["numbers"]))["root"], json.loads(schema_of(samples["refs"]))["root"],
                  {"$": "bytes", "tensor": "u8"}]},
        separators=(",", ":")).encode()
    if views is not None:
        load["torch_views.safetensors"] = views
        load["doc_torch_views.json"] = schema_of(views).encode()
    for name in ("basic", "containers", "dataclass"):  # safestructures 1.0.0 files
        load[f"v1_{name}.safetensors"] = (V1_FILES / f"{name}.safetensors").read_bytes()

    # fuzz_strict_json: a first byte 0x01 and the data buffer's size, then a header's text; or 0x80 (default limits) or
    # 0x0e (depth 9, 33 nodes) and a byte, then schema JSON.
    strict = {}
    for name, file in container.items():
        n = struct.unpack("<Q", file[:8])[0]
        if len(file) - 8 - n < 256:
            strict[f"header_{name}"] = bytes([1, len(file) - 8 - n]) + file[8 : 8 + n]
    for name, file in {**samples, "tiny": ss.save({"step": 10, "lr": 1e-3, "name": "run", "t": np.arange(16, dtype=np.float32)})}.items():
        n = struct.unpack("<Q", file[:8])[0]
        if len(file) - 8 - n < 256:
            strict[f"header_{name}"] = bytes([1, len(file) - 8 - n]) + file[8 : 8 + n]
        strict[f"schema_{name}.json"] = b"\x80\x00" + schema_of(file).encode()
        strict[f"schema_limited_{name}.json"] = b"\x0e\x20" + schema_of(file).encode()
    for name in ("json_numbers.json", "json_strings.json", "deep.json"):
        strict[f"schema_{name}"] = b"\x80\x00" + schema[name]

    # fuzz_file_api: the structured and plain files of the other targets; fuzz_recording: recordings.
    file_api = {name: file for name, file in {**container, **load}.items() if name.endswith(".safetensors")}
    for target, files in {"fuzz_container": container, "fuzz_schema": schema, "fuzz_load": load,
                          "fuzz_strict_json": strict, "fuzz_file_api": file_api,
                          "fuzz_recording": recording_samples()}.items():
        folder = CORPUS / target
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, content in files.items():
            (folder / name).write_bytes(content)
        print(f"{folder.relative_to(HERE.parent.parent)}: {len(files)} files, {sum(map(len, files.values()))} bytes")


if __name__ == "__main__":
    main()
