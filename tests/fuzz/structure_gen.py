"""Builds safestructures files from fuzzer bytes by the schema grammar of docs/format.md section 5, not by mutating
bytes: every choice (which node, which tag, which field of which kind, which id a ref names, how many times a
structure is doubled...) is read from an atheris FuzzedDataProvider, so that libFuzzer's mutations move between
productions of the grammar. Used by fuzz_structure.py (the atheris target) and make_structure_corpus.py (its seeds).

The generator aims at the meaning of a structure, where byte-level fuzzers are blind: shared references (refs to
ancestors = cycles, refs to ids defined later, doubling structures whose expansion is exponential), keys in every
hashable position (pair-form dict keys, set items, enum values) including keys that all hash alike, views with zero,
negative and huge strides and shapes, logical dtypes, every framework name, many nodes naming one tensor, lone
surrogates, numbers at their limits, and the classes the target registers (forged enum members, ext classes built
without their from_data).

``Caps`` bounds the productions that reproduce the known findings of issue 14 (``STRUCTURE_FUZZ_KNOWN=avoid``), so a
run against a build that still has them can look for new ones instead of finding the same hang again.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

SCHEMA_KEY = "__safestructures__"

# The 22 safetensors dtypes with their bits per element.
DTYPES = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}
DTYPE_NAMES = list(DTYPES)
FRAMEWORKS = ["numpy", "torch", "tensorflow", "jax", "paddle", "mlx"]
# Logical dtypes of tensor nodes (5.4) and npscalar dtypes, valid and not.
LOGICAL_DTYPES = [
    ">i4", "<i4", ">f8", ">u2", "<c16", ">c16", "<f16", "<f12", "int4", "uint4", "int2", "uint2", "float8_e3m4",
    "float8_e4m3", "float8_e4m3b11fnuz", "bfloat16", "float32", "int64", "bool", "complex128", "longdouble", "U", "S",
    "<U3", "|S5", "<M8[ns]", "<m8[D]", "<M8", "<m8", "datetime64", "torch.complex32", "torch.float16", "torch.bogus",
    "torch.", "O", "|O", "V8", "[('a','<i4')]", "<i4,<f8", "(2,)i4", "", "i", "float", "object", "str", "void",
    ">", "torch.complex32\u0000",
]
TORCH_DTYPE_NAMES = ["float16", "bfloat16", "float32", "int8", "bool", "complex32", "_dynamo", "Tensor", "nn",
                     "__class__", "float8_e4m3fn", "uint16", "qint8", ""]
ZONES = ["UTC", "Europe/Paris", "America/New_York", "../../etc/passwd", "/etc/localtime", "", "Etc/GMT+5", "x" * 300]
DEFAULTDICT_FACTORIES = [None, "list", "dict", "set", "frozenset", "tuple", "int", "float", "complex", "str", "bytes",
                         "bytearray", "bool", "OrderedDict", "Counter", "deque", "eval", "os.system", "object", "type"]
OBJECT_BASES = ["dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str", "bytes", "bytearray",
                "OrderedDict", "Counter", "object", "type", "bool", None]
PATH_KINDS = ["PurePosixPath", "PureWindowsPath", "PosixPath", "WindowsPath", "Path", "os"]
# Class names: the ones fuzz_structure.py registers, and ones nothing registers.
TYPE_NAMES = ["fuzz.Perm", "fuzz.Flags", "fuzz.Color", "fuzz.Ext", "fuzz.Point", "fuzz.Pair", "fuzz.MyDict",
              "fuzz.MyInt", "fuzz.Plain", "m.Unknown", "builtins.dict", "os.system", "enum.Enum", ""]

INT64_EDGES = [0, 1, -1, 2**31 - 1, -2**31, 2**32, 2**53 + 1, 2**63 - 1, -2**63, 2**62, -2**62, 2**53]
# JSON integers outside int64: the whole schema is refused (SchemaNotJson), so they are picked rarely.
OUT_OF_RANGE = [2**63, -2**63 - 1, 2**64 - 1, 2**64, 10**30, -10**30]
FLOAT_EDGES = [0.0, -0.0, 1.0, 0.5, 1e308, -1e308, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1e-7]
# Shapes and strides of views, and hex ints.
DIMS = [0, 1, 2, 3, 4, 7, 16, 1000, 2**20, 2**31, 2**32 + 1, 2**40, 2**62, 2**63 - 1, 2**64 - 1, -1]
STRIDES = [0, 0, 1, -1, 2, -2, 3, 4, 1000, -1000, 2**31, 2**62, -2**62, 2**63 - 1, -2**63]
PRIME61 = 2**61 - 1


@dataclass
class Caps:
    """Upper bounds of the productions that reproduce issue 14's known findings; the defaults are the full ranges."""

    doubling_levels: int = 40  # 2: a doubling tuple hashed as a key (2**levels)
    hashed_doubling: bool = True  # 2: doubling structures placed where they are hashed
    colliding_keys: int = 4000  # 6: keys k*(2**61-1), which all hash to 0
    repeat: int = 3000  # 4, 8: one node repeated (bytes naming one tensor, Ellipsis leaves)
    # A subtree repeated makes at most this many nodes: a file big by construction takes long to walk by its size
    # alone (linear work, which the budgets are not about), and an instrumented walk of a million nodes exceeds them.
    repeated_nodes: int = 20_000
    view_elements: int = 2**64  # 5: elements of a view (zero strides over a tiny base)
    surrogate_in_dtype: bool = True  # 1: lone surrogates in echoed dtype fields
    forged_registered: bool = True  # 13: object/enum/ext nodes for the registered classes
    decimal_beside_bits: int = 4_000_000  # 94: a big int beside Decimals of its hash value, compared by conversion

    @classmethod
    def avoiding_known(cls) -> "Caps":
        return cls(doubling_levels=12, hashed_doubling=False, colliding_keys=40, repeat=40, view_elements=2**16,
                   surrogate_in_dtype=False, decimal_beside_bits=2000)


class OutOfData(Exception):
    pass


class Generator:
    """One file from one FuzzedDataProvider. ``root()`` returns the schema's root node; ``tensors`` the tensors the
    file holds (name -> dtype, shape, raw bytes)."""

    def __init__(self, fdp: Any, caps: Caps | None = None, max_nodes: int = 400) -> None:
        self.fdp = fdp
        self.caps = caps or Caps()
        self.next_id = 1
        self.defined: list[int] = []  # ids defined so far (finished or open)
        self.open_ids: list[int] = []  # ids of containers being built (ancestors: a ref to one is a cycle)
        self.tensors: dict[str, tuple[str, list[int], bytes]] = {}
        self.budget = max_nodes
        self.in_many = False  # a repeated node holds no repetition of its own (the JSON text would multiply)

    # --- choices -----------------------------------------------------------------------------------------------------

    def n(self, lo: int, hi: int) -> int:
        return self.fdp.ConsumeIntInRange(lo, hi)

    def pick(self, options: list[Any]) -> Any:
        return options[self.fdp.ConsumeIntInRange(0, len(options) - 1)]

    def count(self, cap: int) -> int:
        """A count from 1 to ``cap``, log-uniform: small counts are common, ``cap`` is reachable."""
        cap = max(1, cap)
        high = 1 << self.n(0, cap.bit_length() - 1)
        return min(cap, self.n(high, 2 * high - 1))

    def flip(self, percent: int = 50) -> bool:
        return self.fdp.ConsumeIntInRange(0, 99) < percent

    def spend(self) -> bool:
        self.budget -= 1
        return self.budget > 0 and self.fdp.remaining_bytes() > 0

    # --- leaves ------------------------------------------------------------------------------------------------------

    def text(self) -> str:
        choice = self.n(0, 7)
        if choice == 0:
            return self.fdp.ConsumeUnicodeNoSurrogates(self.n(0, 12))
        if choice == 1:
            return self.pick(["", "$", "#", "a", "a.b", "0", "__safestructures__", "root", "items", "\u0000", "é", "🙂"])
        if choice == 2:
            return self.pick(TYPE_NAMES)
        if choice == 3:
            return self.pick(LOGICAL_DTYPES)
        return "k" + str(self.n(0, 50))

    def surrogate_str(self) -> dict[str, Any]:
        points = [self.pick([0xD800, 0xDFFF, 0xDBFF, 0x41, 0x10FFFF, 0, 0x110000, -1, 2**40])
                  for _ in range(self.n(1, 4))]
        if self.flip(20):
            return {"$": "str", "cp": self.pick([None, "x", [1.5], [[65]], [{"$": "int", "hex": "0x41"}]])}
        return {"$": "str", "cp": points}

    def scalar(self) -> Any:
        choice = self.n(0, 11)
        if choice == 0:
            return None
        if choice == 1:
            return self.flip()
        if choice == 2:
            if self.flip(5):
                return self.pick(OUT_OF_RANGE)
            return self.pick(INT64_EDGES) if self.flip(60) else self.n(-1000, 1000)
        if choice == 3:
            return self.pick(FLOAT_EDGES)
        if choice in (4, 5):
            return self.text()
        if choice == 6:
            return self.big_int()
        if choice == 7:
            return self.float_tag()
        if choice == 8:
            return self.surrogate_str()
        if choice == 9:
            return {"$": "Ellipsis"}
        if choice == 10:
            return {"$": "complex", "re": self.pick(FLOAT_EDGES + [self.float_tag(), "x", None]),
                    "im": self.pick(FLOAT_EDGES + [1, None])}
        return self.fdp.ConsumeRegularFloat() if self.flip() else self.n(-2**63, 2**63 - 1)

    def big_int(self) -> dict[str, Any]:
        choice = self.n(0, 6)
        if choice == 0:
            value = self.pick(INT64_EDGES + OUT_OF_RANGE) * self.pick([1, PRIME61, 2**64, 2**200])
            return {"$": "int", "hex": hex(value)}
        if choice == 1:
            return {"$": "int", "hex": "0x" + "f" * self.pick([1, 16, 17, 300, 5000, 20000])}
        if choice == 2:
            return {"$": "int", "hex": self.pick(["0x", "-0x", "0x-1", "0xg", "1f", "0X1F", "-0x0", " 0x1", "0x1_0",
                                                  "+0x1", "0x\u0661", "", "--0x1"])}
        if choice == 3:
            return {"$": "int", "hex": self.pick([1, None, [], 1.5])}
        if choice == 4:
            return {"$": "int"}
        return {"$": "int", "hex": hex(self.n(1, 100) * PRIME61)}

    def float_tag(self) -> dict[str, Any]:
        node: dict[str, Any] = {"$": "float", "v": self.pick(["nan", "inf", "-inf", "NaN", "1.0", "", None, 1.0])}
        if self.flip(30):
            node["bits"] = self.pick(["7ff8000000000001", "fff8000000000000", "0000000000000000", "7ff0000000000000",
                                      "7ff", "zzzzzzzzzzzzzzzz", "7ff80000000000000", 5, None])
        return node

    # --- keys ---------------------------------------------------------------------------------------------------------

    def key(self, depth: int) -> Any:
        choice = self.n(0, 13)
        if choice <= 2:
            return self.text()
        if choice == 3:
            return self.pick(INT64_EDGES) if self.flip() else self.n(-5, 5)
        if choice == 4:
            return {"$": "int", "hex": hex(self.n(1, 64) * PRIME61 * self.pick([1, -1]))}
        if choice == 5:
            return self.pick(FLOAT_EDGES + [self.float_tag(), None, True, False])
        if choice == 6:
            return {"$": "tuple", **self.maybe_id(), "items": [self.key(depth + 1) for _ in range(self.n(0, 3))]}
        if choice == 7:
            return {"$": "frozenset", **self.maybe_id(), "items": [self.key(depth + 1) for _ in range(self.n(0, 3))]}
        if choice == 8:
            return self.ref()
        if choice == 9 and self.caps.hashed_doubling:
            return self.doubling(self.pick(["tuple", "frozenset", "namedtuple"]))
        if choice == 10:
            return self.tagged(depth + 1)
        if choice == 11:
            return self.surrogate_str()
        if choice == 12:
            return self.enum_node(depth + 1)
        return self.node(depth + 1)  # anything, hashable or not

    def maybe_id(self) -> dict[str, Any]:
        if self.flip(25):
            return {"#": self.new_id()}
        return {}

    def new_id(self) -> Any:
        if self.flip(5):
            return self.pick([0, -1, 2**63, 1.5, "1", None, self.defined[0] if self.defined else 1])
        ident = self.next_id
        self.next_id += 1
        self.defined.append(ident)
        return ident

    def ref(self) -> dict[str, Any]:
        choice = self.n(0, 5)
        if choice <= 1 and self.defined:
            return {"$": "ref", "#": self.pick(self.defined)}
        if choice == 2 and self.open_ids:
            return {"$": "ref", "#": self.pick(self.open_ids)}  # a cycle
        if choice == 3:
            return {"$": "ref", "#": self.next_id + self.n(0, 3)}  # defined later, or never
        if choice == 4:
            return {"$": "ref", "#": self.pick([0, -1, 2**63, 1.5, "1", None, [1]])}
        return {"$": "ref"} if self.flip() else {"$": "ref", "#": 1, "x": 2}

    # --- structures ---------------------------------------------------------------------------------------------------

    def doubling(self, tag: str) -> Any:
        """A ``tag`` container of ``levels`` levels, each holding the level below twice (the second time as a ref)."""
        levels = self.n(1, max(1, self.caps.doubling_levels)) if self.flip(30) else self.n(1, 8)
        first = self.next_id
        self.next_id += levels
        leaf = self.key(99) if self.flip(30) else self.n(0, 9)
        node: Any = self.container_node(tag, first, [leaf, self.n(0, 9)])
        self.defined.append(first)
        for k in range(1, levels):
            ident = first + k
            node = self.container_node(tag, ident, [node, {"$": "ref", "#": ident - 1}])
            self.defined.append(ident)
        return node

    def container_node(self, tag: str, ident: int, items: list[Any]) -> dict[str, Any]:
        if tag in ("dict", "OrderedDict", "Counter", "defaultdict"):
            node: dict[str, Any] = {"$": tag, "#": ident}
            if tag == "defaultdict":
                node["factory"] = None
            node["items"] = [[str(i), v] for i, v in enumerate(items)]
            return node
        if tag == "namedtuple":
            return {"$": tag, "#": ident, "type": "fuzz.Pair", "fields": ["a", "b"], "items": items}
        return {"$": tag, "#": ident, "items": items}

    def children(self, depth: int, lo: int = 0, hi: int = 4) -> list[Any]:
        out = []
        for _ in range(self.n(lo, hi)):
            if not self.spend():
                break
            out.append(self.node(depth + 1))
        return out

    def pairs(self, depth: int) -> list[Any]:
        out: list[Any] = []
        for _ in range(self.n(0, 4)):
            if not self.spend():
                break
            if self.flip(5):
                out.append(self.pick([[1], [1, 2, 3], "x", None, {"k": 1}]))  # malformed pair
            else:
                out.append([self.key(depth + 1), self.node(depth + 1)])
        return out

    def container(self, tag: str, depth: int) -> dict[str, Any]:
        node: dict[str, Any] = {"$": tag}
        ident = None
        if self.flip(40):
            ident = node["#"] = self.new_id()
        mutable = tag in ("list", "dict", "OrderedDict", "Counter", "defaultdict", "deque")
        if mutable and isinstance(ident, int):
            self.open_ids.append(ident)
        if tag == "defaultdict":
            node["factory"] = self.pick(DEFAULTDICT_FACTORIES)
        if tag == "deque":
            node["maxlen"] = self.pick([None, 0, 1, 3, -1, 2**63, "2", 1.5])
        if tag in ("dict", "OrderedDict", "Counter", "defaultdict"):
            node["items"] = self.pairs(depth)
        elif tag in ("set", "frozenset"):
            node["items"] = [self.key(depth + 1) for _ in range(self.n(0, 4)) if self.spend()]
        else:
            node["items"] = self.children(depth)
        if mutable and isinstance(ident, int):
            self.open_ids.remove(ident)
        if self.flip(5):  # wrong kinds, missing and extra fields
            self.mangle(node)
        return node

    def mangle(self, node: dict[str, Any]) -> None:
        choice = self.n(0, 4)
        fields = [k for k in node if k != "$"]
        if choice == 0 and fields:
            del node[self.pick(fields)]
        elif choice == 1 and fields:
            node[self.pick(fields)] = self.pick([None, 1, "x", [], {}, [[1]], -1, 2**70, {"$": "ref", "#": 1}])
        elif choice == 2:
            node[self.pick(["extra", "#", "$", "items", "v"])] = 1
        elif choice == 3:  # "$" not first
            items = list(node.items())
            node.clear()
            node.update(items[1:] + items[:1])
        else:
            node["$"] = self.pick(["", "Tuple", "reff", "tensor ", 1, None, "__import__", "object"])

    # --- tags ---------------------------------------------------------------------------------------------------------

    def enum_node(self, depth: int) -> dict[str, Any]:
        names = ["A", "B", "R", "W", "R|W", "X", "", "__class__", "_missing_", "mro"]
        type_name = self.pick(["fuzz.Perm", "fuzz.Flags", "fuzz.Color", "m.Unknown"]) if self.caps.forged_registered \
            else "m.Unknown"
        value = self.pick([1, 2, 3, 999, -1, 0, "x", None]) if self.flip(70) else self.key(depth + 1)
        return {"$": "enum", "type": type_name, "name": self.pick(names), "value": value}

    def timedelta(self) -> dict[str, Any]:
        return {"$": "timedelta", "days": self.pick([0, 1, -1, 999999999, 10**9, -10**9, 2**63]),
                "seconds": self.pick([0, 86399, 86400, -1]), "microseconds": self.pick([0, 999999, 10**6, -1])}

    def tz(self) -> Any:
        if self.flip():
            return {"$": "ZoneInfo", "key": self.pick(ZONES)}
        node: dict[str, Any] = {"$": "timezone", "offset": self.timedelta()}
        if self.flip(30):
            node["name"] = self.pick(["UTC", "", self.surrogate_str(), 1])
        return node

    def tagged(self, depth: int) -> dict[str, Any]:
        tag = self.pick([
            "range", "slice", "Ellipsis", "complex", "datetime", "date", "time", "timedelta", "timezone", "ZoneInfo",
            "Decimal", "Fraction", "UUID", "torch.dtype", "torch.device", "torch.Size", "path", "npscalar",
            "dataclass", "namedtuple", "enum", "object", "ext", "plugin", "nested", "int", "float", "str", "bytes",
            "bytearray", "unknown",
        ])
        s = self.surrogate_str
        if tag == "range":
            return {"$": tag, "start": self.pick(INT64_EDGES), "stop": self.pick(INT64_EDGES + [self.big_int()]),
                    "step": self.pick([1, -1, 0, 2**63, self.big_int()])}
        if tag == "slice":
            return {"$": tag, "start": self.node(depth + 1), "stop": self.node(depth + 1), "step": self.node(depth + 1)}
        if tag == "Ellipsis":
            return {"$": tag}
        if tag == "complex":
            return {"$": tag, "re": self.pick(FLOAT_EDGES + [self.float_tag()]), "im": self.pick(FLOAT_EDGES + [1])}
        if tag in ("datetime", "time", "date"):
            iso = {"datetime": ["2024-01-01T00:00:00", "9999-12-31T23:59:59.999999", "0001-01-01T00:00:00"],
                   "date": ["2024-02-29", "2023-02-29", "0000-01-01"],
                   "time": ["23:59:59.999999", "24:00:00", "12:00"]}[tag] + ["", "x", "2024-01-01T00:00:00+01:00"]
            node: dict[str, Any] = {"$": tag, "iso": self.pick(iso) if self.flip(85) else s()}
            if tag != "date" and self.flip(40):
                node["tz"] = self.tz()
            if tag != "date" and self.flip(15):
                node["fold"] = self.pick([1, 0, 2, True])
            return node
        if tag == "timedelta":
            return self.timedelta()
        if tag == "timezone":
            return self.tz() if self.flip(20) else {"$": tag, "offset": self.timedelta()}
        if tag == "ZoneInfo":
            return {"$": tag, "key": self.pick(ZONES) if self.flip(80) else s()}
        if tag == "Decimal":
            return {"$": tag, "v": self.pick(["1.5", "NaN", "-sNaN123", "Infinity", "1e999999999999", "1E-999999999",
                                              "9" * 5000, "x", "", "1_0"])}
        if tag == "Fraction":
            return {"$": tag, "n": self.pick([1, -1, 0, self.big_int()]), "d": self.pick([1, 0, -3, self.big_int(), "2"])}
        if tag == "UUID":
            return {"$": tag, "hex": self.pick(["0" * 32, "f" * 32, "0" * 31, "g" * 32, "0" * 33, 1])}
        if tag == "torch.dtype":
            return {"$": tag, "name": self.pick(TORCH_DTYPE_NAMES) if self.flip(85) else s()}
        if tag == "torch.device":
            return {"$": tag, "type": self.pick(["cpu", "cuda", "meta", "xla", "", "cpu:0"]),
                    "index": self.pick([None, 0, -1, 2**63, "0"])}
        if tag == "torch.Size":
            return {"$": tag, "dims": [self.pick(DIMS) for _ in range(self.n(0, 4))]}
        if tag == "path":
            return {"$": tag, "kind": self.pick(PATH_KINDS), "v": self.pick(["a/b", "C:\\x", "/", "", "\u0000", "."])}
        if tag == "npscalar":
            return self.npscalar(depth)
        if tag == "dataclass":
            fields = {self.text(): self.node(depth + 1) for _ in range(self.n(0, 3))}
            node = {"$": tag, "type": self.pick(TYPE_NAMES), "fields": fields}
            if self.flip(20):
                node["base"] = self.pick(OBJECT_BASES)
                node["value"] = self.node(depth + 1)
            return node
        if tag == "namedtuple":
            count = self.n(0, 3)
            return {"$": tag, "type": self.pick(TYPE_NAMES),
                    "fields": [self.pick(["a", "b", "c", "_x", "a", "", "1"]) for _ in range(self.n(0, 3))]
                    if self.flip(20) else ["a", "b", "c"][:count],
                    "items": [self.node(depth + 1) for _ in range(count)]}
        if tag == "enum":
            return self.enum_node(depth)
        if tag == "object":
            node = {"$": tag, "type": self.pick(TYPE_NAMES) if self.caps.forged_registered else "m.Unknown"}
            if self.flip(70):
                node["base"] = self.pick(OBJECT_BASES)
                node["value"] = self.node(depth + 1) if self.flip(60) else self.pick([999, 1, "x", 1.5, [1], None])
            if self.flip(40):
                node["attrs"] = {self.pick(["x", "_value_", "_name_", "__class__", "__dict__", "marker"]):
                                 self.node(depth + 1) for _ in range(self.n(0, 2))}
            return node
        if tag == "ext":
            return {"$": tag, "type": self.pick(TYPE_NAMES), "data": self.node(depth + 1)}
        if tag == "plugin":
            node = {"$": tag, "type": self.text(), "value": self.node(depth + 1)}
            if self.flip(30):
                node["extra"] = {"k": self.node(depth + 1)}
            if self.flip(30):
                node["tensors"] = {"0": self.tensor_node(depth)}
            return node
        if tag == "nested":
            return {"$": tag, "v": self.node(depth + 1)}
        if tag == "int":
            return self.big_int()
        if tag == "float":
            return self.float_tag()
        if tag == "str":
            return s()
        if tag in ("bytes", "bytearray"):
            return self.bytes_node(tag)
        return {"$": self.pick(["unknown", "__reduce__", "pickle", "Tensor", "refs", "$"]), "v": 1}

    def npscalar(self, depth: int) -> dict[str, Any]:
        if self.caps.surrogate_in_dtype and self.flip(10):
            dtype: Any = self.surrogate_str()
        else:
            dtype = self.pick(["float32", "float64", "int8", "uint64", "bfloat16", "int4", "float8_e4m3fn", "U", "S",
                               "<M8[ns]", "<M8", "<c16", "longdouble", "O", "V4", "bool", "float16", "complex64",
                               "torch.float16", "", 1, None])
        node: dict[str, Any] = {"$": "npscalar", "dtype": dtype}
        if self.flip(70):
            node["v"] = self.pick([0, 1, -1, 2**63, 1.5, "x", b"x".hex(), True, None, self.big_int(), self.float_tag(),
                                   {"$": "bytes", "b64": "eA=="}, 300, -129])
        else:
            node["raw"] = self.bytes_node("bytes")
        return node

    def bytes_node(self, tag: str) -> dict[str, Any]:
        node: dict[str, Any] = {"$": tag}
        if self.flip(10):
            node["#"] = self.new_id()
        if self.flip(55):
            node["b64"] = self.pick(["", "eA==", "AAEC", "eA", "!!!!", "====", "A" * 88, "A" * 85 + "=", 1, None])
        else:
            node["tensor"] = self.tensor_name(bytes_like=True)
        return node

    # --- tensors ------------------------------------------------------------------------------------------------------

    def add_tensor(self, dtype: str | None = None, shape: list[int] | None = None, mismatch: bool = False) -> str:
        name = self.pick(["t", "u", "v", "w", "a.b", "x~1", "root", "é"]) + str(len(self.tensors))
        dtype = dtype or self.pick(DTYPE_NAMES)
        if shape is None:
            shape = [self.pick([0, 1, 2, 3, 4, 8]) for _ in range(self.n(0, 3))]
        count = 1
        for d in shape:
            count *= d
        bits = DTYPES[dtype] * count
        if bits % 8:
            shape = shape + [8] if shape and shape[-1] else [8]
            bits *= 8
        nbytes = bits // 8
        raw = bytes((i * 37 + 11) & 0xFF for i in range(min(nbytes, 4096))) if nbytes <= 4096 else b"\x01" * nbytes
        self.tensors[name] = (dtype, shape, raw)
        return name

    def tensor_name(self, bytes_like: bool = False) -> Any:
        if self.tensors and self.flip(45):
            return self.pick(list(self.tensors))  # one tensor named by many nodes
        choice = self.n(0, 9)
        if choice == 0:
            return self.pick(["missing", "", "__safestructures_schema__", "__metadata__", 1, None])
        if bytes_like and choice <= 6:
            return self.add_tensor("U8", [self.pick([0, 1, 3, 64, 65, 1000, 4096, 1 << 16])])
        if choice == 9:
            return self.add_tensor(self.pick(["U8", "F4", "F6_E2M3", "I32", "BF16"]),
                                   [self.pick([1, 2, 64, 1024, 1 << 18])])
        return self.add_tensor()

    def tensor_node(self, depth: int) -> dict[str, Any]:
        node: dict[str, Any] = {"$": "tensor"}
        if self.flip(10):
            node["#"] = self.new_id()
        view = self.flip(35)
        if view:
            node["storage"] = self.tensor_name()
            if self.flip(10):
                node["name"] = self.tensor_name()
            node["offset"] = self.pick([0, 0, 1, 3, -1, 2**63, 2**62, 1.5, None])
            node["shape"], node["stride"] = self.view_shape()
        else:
            node["name"] = self.tensor_name()
            if self.flip(25):
                node["shape"] = [self.pick(DIMS) for _ in range(self.n(0, 3))]
        node["fw"] = self.pick(FRAMEWORKS) if self.flip(90) else self.pick(["", "pickle", None, 1, "NumPy"])
        if self.flip(30):
            if self.caps.surrogate_in_dtype and self.flip(10):
                node["dtype"] = self.surrogate_str() if self.flip() else {
                    "$": "str", "cp": [ord(c) for c in "torch."] + [0xD800]}
            else:
                node["dtype"] = self.pick(LOGICAL_DTYPES)
        for field, values in (("param", [True, False, 1]), ("grad", [True, False, "y"]), ("variable", [True, 1]),
                              ("trainable", [True, False]), ("x2", [True, False, 2])):
            if self.flip(6):
                node[field] = self.pick(values)
        if self.flip(3):
            self.mangle(node)
        return node

    def view_shape(self) -> tuple[Any, Any]:
        if self.flip(5):
            return self.pick([None, 1, "x", [1.5], [[1]]]), self.pick([None, [], [1, 2]])
        rank = self.n(0, 4)
        shape = [self.pick(DIMS) for _ in range(rank)]
        stride = [self.pick(STRIDES) for _ in range(rank)]
        if self.flip(30):
            stride = [0] * rank  # an expanded tensor
        if self.flip(5):
            stride = stride + [1]  # one too many
        elements = 1
        for d in shape:
            elements *= max(d, 0)
        if elements > self.caps.view_elements and all(s == 0 for s in stride):
            shape = [min(max(d, 0), 16) for d in shape]
        return shape, stride

    # --- the grammar's entry --------------------------------------------------------------------------------------------

    def node(self, depth: int = 0) -> Any:
        if depth > 12 or not self.spend():
            return self.scalar() if self.fdp.remaining_bytes() else None
        choice = self.n(0, 19)
        if choice <= 2:
            return self.scalar()
        if choice == 3:
            return self.children(depth)  # a JSON array
        if choice == 4:  # a plain JSON object
            obj = {}
            for _ in range(self.n(0, 4)):
                obj[self.text()] = self.node(depth + 1)
            if self.flip(3):
                obj["$"] = "x"  # a "$" member that is not first
            return obj
        if choice == 5:
            return self.container(self.pick(["list", "tuple", "set", "frozenset", "deque"]), depth)
        if choice == 6:
            return self.container(self.pick(["dict", "OrderedDict", "Counter", "defaultdict"]), depth)
        if choice in (7, 8):
            return self.tagged(depth)
        if choice == 9:
            return self.ref()
        if choice in (10, 11):
            return self.tensor_node(depth)
        if choice == 12:
            return self.bytes_node(self.pick(["bytes", "bytearray"]))
        if choice == 13:
            tag = self.pick(["tuple", "list", "frozenset", "dict", "namedtuple", "deque", "OrderedDict"])
            inner = self.doubling(tag)
            if self.caps.hashed_doubling and self.flip(50):  # placed where it is hashed
                where = self.n(0, 4)
                if where == 0:
                    return {"$": "set", "items": [inner]}
                if where == 1:
                    return {"$": "dict", "items": [[inner, 1]]}
                if where == 2:
                    return {"$": "enum", "type": "m.Unknown", "name": "X", "value": inner}
                if where == 3:
                    return {"$": "slice", "start": inner, "stop": None, "step": None}
                return {"$": "Counter", "items": [[inner, 1]]}
            return inner
        if choice == 14:
            if self.in_many:
                return self.scalar()
            self.in_many = True
            try:
                return self.many(depth)
            finally:
                self.in_many = False
        if choice == 15:
            return self.enum_node(depth)
        if choice == 16:
            return self.container(self.pick(["set", "frozenset"]), depth)
        return self.container("dict", depth) if self.flip() else self.children(depth)

    def many(self, depth: int) -> Any:
        """One node repeated, or many keys that hash alike."""
        choice = self.n(0, 6)
        if choice == 6:
            return self.decimals_beside_a_big_int()
        if choice <= 1:
            count = self.count(self.caps.colliding_keys)
            keys = [{"$": "int", "hex": hex(k * PRIME61)} for k in range(1, count + 1)]
            if choice == 0:
                return {"$": self.pick(["set", "frozenset"]), "items": keys}
            return {"$": self.pick(["dict", "Counter", "OrderedDict"]), "items": [[k, 0] for k in keys]}
        count = self.count(self.caps.repeat)
        if choice == 2:
            leaf: Any = self.bytes_node(self.pick(["bytes", "bytearray"]))
        elif choice == 3:
            leaf = self.pick([{"$": "Ellipsis"}, {"$": "tuple", "items": [1]}, [], {"$": "int", "hex": "0x1"}])
        else:
            leaf = self.node(depth + 1)
            count = min(count, max(1, self.caps.repeated_nodes // nodes_in(leaf)))
        if self.flip(30):
            return {"$": "dict", "items": [[{"$": "tuple", "items": [k]}, leaf] for k in range(count)]}
        return [leaf] * count

    def decimals_beside_a_big_int(self) -> Any:
        """A set (or a mapping's keys) holding a big int and Decimals of its hash value, bare or each in a 1-tuple (whose
        hash is its item's), or in two frozensets of one hash value: Python compares a Decimal with an int by converting
        the int to decimal."""
        big = (1 << self.count(self.caps.decimal_beside_bits)) + self.n(0, 1000)
        same = big % PRIME61
        decimals = [{"$": "Decimal", "v": str(same + k * PRIME61)} for k in range(1, self.count(31) + 1)]
        items = [{"$": "int", "hex": hex(big)}] + decimals
        shape = self.n(0, 2)
        if shape == 1:
            items = [{"$": "tuple", "items": [item]} for item in items]
        elif shape == 2:
            pairs = [v for x in range(1, (len(decimals) - 1) // 2 + 1) for v in (x, x + PRIME61)]
            items = [{"$": "frozenset", "items": decimals}, {"$": "frozenset", "items": items[:1] + pairs}]
        if self.flip():
            return {"$": self.pick(["set", "frozenset"]), "items": items}
        return {"$": self.pick(["dict", "Counter", "OrderedDict"]), "items": [[k, 0] for k in items]}

    def root(self) -> Any:
        return self.node(0)


def nodes_in(node: Any) -> int:
    """How many JSON values ``node`` is written as (a Python object placed twice is written twice), counted once per
    distinct object."""
    counted: dict[int, int] = {}

    def count(value: Any) -> int:
        if not isinstance(value, (dict, list)):
            return 1
        if id(value) not in counted:
            children = value.values() if isinstance(value, dict) else value
            counted[id(value)] = 1 + sum(count(child) for child in children)
        return counted[id(value)]

    return count(node)


def file_bytes(root: Any, tensors: dict[str, tuple[str, list[int], bytes]], document: dict[str, Any] | None = None) -> bytes:
    """A valid safetensors file whose schema's root is ``root``, holding ``tensors`` (name -> dtype, shape, bytes)."""
    doc = {"format": "safestructures", "version": 2, "root": root} if document is None else document
    schema = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    header: dict[str, Any] = {"__metadata__": {SCHEMA_KEY: schema}}
    data = b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def generate(data: bytes, caps: Caps | None = None) -> bytes:
    """The file the fuzzer's bytes ``data`` stand for."""
    import atheris

    fdp = atheris.FuzzedDataProvider(data)
    gen = Generator(fdp, caps)
    try:
        root = gen.root()
        document: dict[str, Any] | None = None
        if gen.fdp.remaining_bytes() and gen.flip(3):  # a malformed document around the root
            document = gen.pick([{"format": "safestructures", "version": 1, "root": root},
                                 {"format": "safestructures", "version": 2},
                                 {"format": "x", "version": 2, "root": root},
                                 {"format": "safestructures", "version": 2, "root": root, "extra": 1}])
        return file_bytes(root, gen.tensors, document)
    except RecursionError:
        # Choices that nest deeper than Python's own JSON encoder goes: no file to test (deep files are the
        # regression inputs' and the byte fuzzers' part), so the input is an empty file, refused at once.
        return b""
