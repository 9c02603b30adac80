"""Hostile inputs of the eighth round's fourth helper (cases 60 on; docs/security.md's table lists them): Python objects
whose own code fails or lies while a save reads them, and files whose tensors or scalars the frameworks read apart.
Each attack has its legitimate twin, which must keep working."""

from __future__ import annotations

import collections
import dataclasses
import subprocess
import sys
import typing
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import crafted
import safestructures as ss


def round_trip(value: Any) -> Any:
    return ss.load(ss.save({"v": value}))["v"]


# --- 60. code a save runs raises: the error names the path, the original chained --------------------------------------------

class R8dToken:
    pass


ss.register(R8dToken, to_data=lambda token: 1 / 0, from_data=lambda data: R8dToken())


@dataclasses.dataclass
class R8dConfig:
    lr: float


R8dConfig.lr = property(lambda self: self.__dict__["missing"])  # type: ignore[assignment,misc]
ss.register(R8dConfig)


class R8dRaisingMeta(type):
    def __hash__(cls) -> int:
        raise RuntimeError("unhashable class")


class R8dOdd(metaclass=R8dRaisingMeta):
    pass


@pytest.mark.parametrize(
    "data, message, cause",
    [
        ({"model": {"tok": [R8dToken()]}}, 'cannot save an object of type test_crafted_round8d.R8dToken at $["model"]["tok"][0]: '
         "ZeroDivisionError: division by zero", ZeroDivisionError),
        ({"cfg": object.__new__(R8dConfig)}, """cannot save an object of type test_crafted_round8d.R8dConfig at $["cfg"]: """
         "KeyError: 'missing'", KeyError),
        ({"x": [R8dOdd()]}, 'cannot save an object of type test_crafted_round8d.R8dOdd at $["x"][0]: RuntimeError: unhashable class',
         RuntimeError),
    ],
    ids=["to_data", "dataclass-property", "class-hash"],
)
def test_case_60_an_exception_of_the_data_s_code_names_the_path(data: Any, message: str, cause: type) -> None:
    # Before: the ZeroDivisionError, KeyError or RuntimeError itself, saying nothing of where in the data it was raised.
    with pytest.raises(ss.UnsupportedTypeError) as info:
        ss.save(data)
    assert str(info.value) == message
    assert type(info.value.__cause__) is cause


def test_case_60_a_safestructures_error_of_an_adapter_gains_the_path() -> None:
    # Before: the message named the tensor's proposed name only ("w.0").
    with pytest.raises(ss.InvalidArgumentError) as info:
        ss.save({"w": [np.zeros(3, ml_dtypes.float4_e2m1fn)]})
    assert str(info.value) == ('at $["w"][0]: tensor "w.0": 3 elements of F4 do not fill a whole number of bytes (the element '
                               "count times 4 bits must be a multiple of 8)")
    assert info.value.code == "SubByteNotWhole"
    assert type(info.value.__cause__) is ss.InvalidArgumentError


class R8dInterrupted:
    pass


def interrupt(obj: Any) -> Any:
    raise KeyboardInterrupt


ss.register(R8dInterrupted, to_data=interrupt, from_data=lambda data: R8dInterrupted())


def test_case_60_twin_an_interrupt_passes_as_it_is() -> None:
    with pytest.raises(KeyboardInterrupt):
        ss.save({"a": [R8dInterrupted()]})


# --- 61. a subclass of a built-in type saved through its overrides -----------------------------------------------------------

class R8dUpper(str):
    def __str__(self) -> str:
        return self.upper()


class R8dIds(list):  # type: ignore[type-arg]
    def __len__(self) -> int:
        raise RuntimeError("lazy")


class R8dMasked(dict):  # type: ignore[type-arg]
    def items(self) -> Any:
        return [(key, "***") for key in dict.keys(self)]

    def keys(self) -> Any:
        return []

    def __iter__(self) -> Any:
        return iter(())


class R8dOrdered(collections.OrderedDict):  # type: ignore[type-arg]
    def items(self) -> Any:
        return [("x", 0)]


class R8dCount(int):
    def __int__(self) -> int:
        return 666

    def __index__(self) -> int:
        return 777


class R8dBlob(bytes):
    def __bytes__(self) -> bytes:
        return b"other"


class R8dTriple(tuple):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        return iter(("other",))


class R8dRatio(float):
    def __float__(self) -> float:
        return 0.5


for _cls in (R8dUpper, R8dIds, R8dMasked, R8dOrdered, R8dCount, R8dBlob, R8dTriple, R8dRatio):
    ss.register(_cls)


def test_case_61_a_subclass_is_saved_as_its_content_not_its_overrides() -> None:
    # Before: 'GOOD' (str() called __str__), RuntimeError (list() asked __len__), {} (dict() merged through keys()),
    # [('x', 0)] (the OrderedDict's items()), 666, b'other', ('other',), 0.5.
    assert str.__str__(round_trip(R8dUpper("good"))) == "good"
    assert list.copy(round_trip(R8dIds([1, 2]))) == [1, 2]
    assert list(dict.items(round_trip(R8dMasked(token="secret")))) == [("token", "secret")]
    ordered = R8dOrdered(a=1, b=2)
    ordered.move_to_end("a")
    assert list(collections.OrderedDict.items(round_trip(ordered))) == [("b", 2), ("a", 1)]
    assert int.__int__(round_trip(R8dCount(5))) == 5
    assert bytes.__getnewargs__(round_trip(R8dBlob(b"good")))[0] == b"good"
    assert tuple.__getnewargs__(round_trip(R8dTriple((1, 2, 3))))[0] == (1, 2, 3)
    assert float.__float__(round_trip(R8dRatio(1.5))) == 1.5


class R8dPlainDict(dict):  # type: ignore[type-arg]
    pass


class R8dPlainCounter(collections.Counter):  # type: ignore[type-arg]
    pass


ss.register(R8dPlainDict)
ss.register(R8dPlainCounter)


def test_case_61_twin_plain_subclasses_keep_their_content_and_attributes() -> None:
    d = R8dPlainDict(a=1, b=[2])
    d.note = "kept"  # type: ignore[attr-defined]
    back = round_trip(d)
    assert type(back) is R8dPlainDict and back == {"a": 1, "b": [2]} and back.note == "kept"
    counter = round_trip(R8dPlainCounter("abca"))
    assert type(counter) is R8dPlainCounter and counter == {"a": 2, "b": 1, "c": 1}
    assert type(round_trip(R8dUpper("x"))) is R8dUpper and type(round_trip(R8dCount(-(2**70)))) is R8dCount


# --- 62. a tuple whose _fields do not name its items ---------------------------------------------------------------------------

class R8dPoint(typing.NamedTuple):
    x: int
    y: int


class R8dNarrowed(R8dPoint):
    _fields = ("x",)  # type: ignore[assignment]


class R8dPair(tuple):  # type: ignore[type-arg]
    _fields = (0, 1)


ss.register(R8dPoint)
ss.register(R8dNarrowed)
ss.register(R8dPair)


@pytest.mark.parametrize(
    "value, why",
    [(R8dNarrowed(1, 2), "R8dNarrowed is a tuple whose _fields ('x',) do not name its 2 items one by one"),
     (R8dPair((1, 2)), "R8dPair is a tuple whose _fields (0, 1) do not name its 2 items one by one")],
    ids=["fewer-fields", "int-fields"],
)
def test_case_62_a_tuple_whose_fields_do_not_name_its_items_is_refused_at_save(value: Any, why: str) -> None:
    # Before: saved, into a file that every load refused ("a namedtuple needs as many 'items' as 'fields'").
    name = type(value).__name__
    with pytest.raises(ss.UnsupportedTypeError) as info:
        ss.save({"p": value})
    assert str(info.value) == f'cannot save an object of type test_crafted_round8d.{name} at $["p"]: class test_crafted_round8d.{why}'


def test_case_62_twin_named_tuples_round_trip() -> None:
    assert round_trip(R8dPoint(1, 2)) == R8dPoint(1, 2) and type(round_trip(R8dPoint(1, 2))) is R8dPoint
    renamed = collections.namedtuple("renamed", ["a", "_b"], rename=True)
    ss.register(renamed, name="test_crafted_round8d.renamed")
    assert round_trip(renamed(1, 2)) == (1, 2)


# --- 63. a valid file's tensor that one framework cannot hold ------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["rank", "wide", "logical"])
@pytest.mark.parametrize("framework", ["numpy", "jax"])
def test_case_63_a_shape_numpy_cannot_hold_is_unsupported_not_invalid(kind: str, framework: str) -> None:
    # Before: InvalidFileError (the file said broken), while torch loads the same tensor.
    if framework == "jax":
        pytest.importorskip("jax")
    with pytest.raises(ss.UnsupportedTypeError) as info:
        ss.load(crafted.tensor_beyond_numpy(kind), framework=framework)
    assert not isinstance(info.value, ss.InvalidFileError)
    assert str(info.value).startswith('at $["t"]: tensor "t" of shape [')
    assert "cannot be a numpy array" in str(info.value)


@pytest.mark.parametrize("kind", ["rank", "wide", "logical"])
def test_case_63_twin_torch_holds_them(kind: str) -> None:
    torch = pytest.importorskip("torch")
    tensor = ss.load(crafted.tensor_beyond_numpy(kind), framework="torch")["t"]
    assert type(tensor) is torch.Tensor
    assert list(tensor.shape) == ([0, 2**63 - 1] if kind == "wide" else [1] * 65)


@pytest.mark.parametrize("dtype", ["<U2", "int4", "<M8[D]", "|S3"])
def test_case_63_a_numpy_dtype_torch_lacks_is_unsupported(dtype: str) -> None:
    # Before: InvalidFileError ("cannot rebuild tensor "t": ValueError: numpy dtype <U2 has no torch dtype"), while JAX
    # refused the same tensor as UnsupportedTypeError.
    pytest.importorskip("torch")
    with pytest.raises(ss.UnsupportedTypeError) as info:
        ss.load(crafted.numpy_only_dtype(dtype), framework="torch")
    assert str(info.value) == f"""at $["t"]: numpy dtype {dtype} has no torch dtype; load with framework='numpy'"""
    assert ss.load(crafted.numpy_only_dtype(dtype))["t"].dtype == np.dtype(ml_dtypes.int4 if dtype == "int4" else dtype)


# --- 64. a numpy scalar whose value its dtype cannot hold --------------------------------------------------------------------

@pytest.mark.parametrize(
    "dtype, value, why",
    [
        ("int4", 100, 'ValueError: a numpy scalar of dtype "int4" cannot hold the value 100 exactly (it would be 4)'),
        ("uint2", 7, 'ValueError: a numpy scalar of dtype "uint2" cannot hold the value 7 exactly (it would be 3)'),
        ("float16", 1e300, 'ValueError: a numpy scalar of dtype "float16" cannot hold the value 1e+300 exactly (it would be inf)'),
        ("float8_e4m3fn", 0.1, 'ValueError: a numpy scalar of dtype "float8_e4m3fn" cannot hold the value 0.1 exactly (it would be 0.1015625)'),
        ("bool", 2, 'TypeError: a numpy scalar of dtype "bool" needs a value of type bool, not int'),
        ("int32", True, 'TypeError: a numpy scalar of dtype "int32" needs a value of type int, not bool'),
        ("U3", 5, """ValueError: a numpy scalar of dtype "U3" is saved by its bytes ('raw'), not by a value"""),
        ("<m8[s]", 5, """ValueError: a numpy scalar of dtype "<m8[s]" is saved by its bytes ('raw'), not by a value"""),
    ],
    ids=["int4", "uint2", "float16", "float8", "bool", "int32", "str", "timedelta"],
)
def test_case_64_a_scalar_value_its_dtype_cannot_hold_is_refused(dtype: str, value: Any, why: str) -> None:
    # Before: 4, 3, inf (with numpy's RuntimeWarning), 0.1015625, True, 1, '5', 5 seconds: wrapped, rounded or converted,
    # while the file (and any reader of its field) says 100, 7, 1e300...
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(crafted.numpy_scalar(dtype, value))
    assert str(info.value) == f"at $[0]: cannot rebuild a npscalar: {why}"


def test_case_64_a_bool_scalar_byte_past_one_is_refused() -> None:
    # Before: np.True_, as the bool tensors of case 46 were.
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(crafted.numpy_scalar("bool", raw=b"\x02"))
    assert str(info.value) == "at $[0]: cannot rebuild a npscalar: ValueError: a numpy bool scalar holds the byte 2, which is no bool (0 or 1)"


SCALARS = [np.bool_(True), np.int8(-128), np.uint64(2**64 - 1), np.int64(-(2**63)), np.float16(65504), np.float32(-0.0),
           np.float64(np.inf), np.complex64(1.5 - 2j), np.float32(np.nan), ml_dtypes.int4(-8), ml_dtypes.uint2(3),
           ml_dtypes.bfloat16(1.5), ml_dtypes.float8_e4m3fn(448), np.datetime64("2020-01-01"), np.timedelta64(5, "s"),
           np.str_("ab"), np.bytes_(b"c"), np.longdouble(1) / 3]


@pytest.mark.parametrize("scalar", SCALARS, ids=[f"{s.dtype}-{k}" for k, s in enumerate(SCALARS)])
def test_case_64_twin_every_saved_scalar_loads_as_itself(scalar: Any) -> None:
    back = round_trip(scalar)
    assert back.dtype == scalar.dtype and back.tobytes() == scalar.tobytes()


class R8dInterruptingItem:
    def __lt__(self, other: Any) -> bool:
        raise KeyboardInterrupt


class R8dUnorderedItem:
    def __lt__(self, other: Any) -> bool:
        raise ValueError("no order")


ss.register(R8dInterruptingItem)
ss.register(R8dUnorderedItem)


def test_case_60_an_interrupt_while_a_set_is_sorted_is_not_swallowed() -> None:
    # Before: the sort's error was cleared whatever it was, and the save went on (a Ctrl-C lost).
    with pytest.raises(KeyboardInterrupt):
        ss.save({R8dInterruptingItem(), R8dInterruptingItem()})
    assert len(ss.load(ss.save({R8dUnorderedItem(), R8dUnorderedItem()}))) == 2  # the twin: saved unsorted


@ss.register
class R8dPosingAsScalar:
    dtype = np.dtype("float64")

    def __init__(self) -> None:
        self.x = 1

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return np.float64


def test_case_61_a_class_posing_as_a_numpy_scalar_is_saved_as_itself() -> None:
    # Before: isinstance() believed the __class__ property, and the save refused it as a numpy scalar it is not.
    back = ss.load(ss.save({"a": R8dPosingAsScalar()}))["a"]
    assert type(back) is R8dPosingAsScalar and back.x == 1


# --- 65. a torch.device index torch keeps in 8 bits ---------------------------------------------------------------------------

@pytest.mark.parametrize("index, made", [(257, "cuda:1"), (255, "cuda"), (128, "cuda:-128"), (2**40, "cuda:0")])
def test_case_65_a_device_index_torch_would_wrap_is_refused(index: int, made: str) -> None:
    # Before: loaded as the device torch made of it (index 257 as cuda:1, 255 as cuda with no index), while the file
    # (and the C++ API's field("index")) says 257.
    pytest.importorskip("torch")
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(crafted.file_bytes([{"$": "torch.device", "type": "cuda", "index": index}]))
    assert str(info.value) == (f"at $[0]: cannot rebuild a torch.device: ValueError: torch cannot make device 'cuda' of index "
                               f"{index}: it would be '{made}'")


def test_case_65_twin_devices_round_trip() -> None:
    torch = pytest.importorskip("torch")
    devices = [torch.device("cuda", 127), torch.device("cuda"), torch.device("cpu"), torch.device("meta", 0)]
    assert ss.load(ss.save(devices)) == devices


# --- 66. attributes a load could not set back as they were -------------------------------------------------------------------

@ss.register
class R8dLoose:
    pass


@ss.register
class R8dLooseDict(dict):  # type: ignore[type-arg]
    pass


@ss.register
class R8dShadowed:
    __slots__ = ("__dict__", "a")


def test_case_66_a_dict_key_that_is_no_attribute_name_is_refused_at_save() -> None:
    # Before: saved, into a file every load refused ("field 'attrs' must map str to values").
    for obj, key in ((R8dLoose(), "5"), (R8dLooseDict(), "(1, 2)")):
        obj.__dict__[eval(key)] = 1
        with pytest.raises(ss.UnsupportedTypeError) as info:
            ss.save({"k": obj})
        assert str(info.value) == (f'cannot save an object of type test_crafted_round8d.{type(obj).__name__} at $["k"]: its __dict__ '
                                   f"holds the key {key}, which is not a str: no attribute a load can set")


def test_case_66_a_slot_shadowing_a_dict_entry_is_refused_at_save() -> None:
    # Before: saved as one attribute 'a' (the __dict__'s 2), which the load put in the slot: 'a' read 1, then 2.
    obj = R8dShadowed()
    obj.a = 1
    obj.__dict__["a"] = 2
    with pytest.raises(ss.UnsupportedTypeError) as info:
        ss.save({"k": obj})
    assert str(info.value).endswith("""at $["k"]: its attribute 'a' is both a filled slot and a key of its __dict__""")


def test_case_66_twin_slots_beside_a_dict_round_trip() -> None:
    obj = R8dShadowed()
    obj.a = 1
    obj.b = [2]  # type: ignore[attr-defined]
    back = round_trip(obj)
    assert back.a == 1 and vars(back) == {"b": [2]}


# --- 66a. a torch flag that is not a bool ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, field", [({"param": "false"}, "param"), ({"param": 1}, "param"), ({"grad": "yes"}, "grad"),
                                          ({"param": True, "grad": 0}, "grad")])
def test_case_66a_a_torch_flag_that_is_no_bool_is_refused(flags: dict[str, Any], field: str) -> None:
    # Before: "param": "false" (or 1) made a Parameter requiring grad, by truthiness; "grad": "yes" was ignored.
    pytest.importorskip("torch")
    node = {"$": "tensor", "name": "t", "fw": "torch", **flags}
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load(crafted.file_bytes({"t": node}, {"t": ("F32", [1], bytes(4))}), framework="torch")
    assert str(info.value) == f"""at $["t"]: cannot rebuild tensor "t": ValueError: field '{field}' must be a bool"""


def test_case_66a_twin_parameters_and_grads_round_trip() -> None:
    torch = pytest.importorskip("torch")
    data = {"p": torch.nn.Parameter(torch.ones(2)), "f": torch.nn.Parameter(torch.ones(1), requires_grad=False),
            "g": torch.ones(1, requires_grad=True), "t": torch.ones(1)}
    back = ss.load(ss.save(data), framework="torch")
    assert [(type(v).__name__, v.requires_grad) for v in back.values()] == [("Parameter", True), ("Parameter", False),
                                                                           ("Tensor", True), ("Tensor", False)]


# --- 66b. code the save runs resizes a numpy array it writes from ------------------------------------------------------------

RESIZED_ARRAY = """
import sys
import numpy as np
import safestructures as ss
WHAT, SIZE = sys.argv[1], int(sys.argv[2])
base = np.full(1 << 18, 7.0)
value = base if WHAT == "array" else base[::2]
class Change:
    pass
def change(obj):
    base.resize((SIZE,), refcheck=False)
    return 1
ss.register(Change, to_data=change, from_data=lambda data: data)
try:
    ss.save({"a": value, "b": Change()})
    print("saved")
except ss.UnsupportedTypeError as e:
    print(e)
"""


@pytest.mark.parametrize("what", ["array", "view"])
@pytest.mark.parametrize("size", [0, 1 << 24])
def test_case_66b_a_numpy_array_resized_under_the_save_is_refused(what: str, size: int) -> None:
    # Before: the writer read the freed memory: SIGSEGV (resized to nothing), or the heap's bytes written into the file
    # (resized larger, moved); a view of the resized array likewise.
    result = subprocess.run([sys.executable, "-c", RESIZED_ARRAY, what, str(size)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"exit status {result.returncode}: {result.stderr[-3000:]}"
    assert result.stdout == ('tensor "a" changed while the data was saved: code the save ran (a to_data, a __getstate__) resized '
                             "it, the array it views or its storage\n")


def test_case_66b_twin_arrays_reshaped_in_place_are_saved() -> None:
    base = np.arange(6.0)

    class Reshape:
        pass

    def reshape(obj: Any) -> int:
        base.shape = (2, 3)  # the same memory: what the walk read stays valid
        return 1

    ss.register(Reshape, to_data=reshape, from_data=lambda data: data, name="test_crafted_round8d.Reshape")
    back = ss.load(ss.save({"a": base, "v": base[1:], "b": Reshape()}))
    assert back["a"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] and back["v"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]


# --- 66c. big-endian bytes torch read as native ----------------------------------------------------------------------------

def test_case_66c_a_big_endian_complex128_array_loads_alike_in_torch_and_numpy() -> None:
    # Before: torch read the saved big-endian bytes as native ones: [3.0e-319+3.2e-322j, ...] where numpy read [1+2j, 3-4j].
    torch = pytest.importorskip("torch")
    data = ss.save({"a": np.array([1 + 2j, 3 - 4j], dtype=">c16"), "s": np.array(1 - 1j, dtype=">c16"), "z": np.zeros(0, ">c16")})
    as_torch, as_numpy = ss.load(data, framework="torch"), ss.load(data)
    for key in ("a", "s", "z"):
        assert as_torch[key].dtype == torch.complex128 and as_torch[key].tolist() == as_numpy[key].tolist()
    assert as_torch["a"].tolist() == [1 + 2j, 3 - 4j]


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax"])
def test_case_66c_big_endian_bytes_named_by_their_dtype_read_alike(framework: str) -> None:
    # Before: torch gave [16777216, 33554432] where numpy and JAX gave [1, 2].
    pytest.importorskip(framework)
    node = {"$": "tensor", "name": "t", "fw": "numpy", "dtype": ">i4", "shape": [2]}
    data = crafted.file_bytes({"t": node}, {"t": ("U8", [8], np.array([1, 2], ">i4").tobytes())})
    assert ss.load(data, framework=framework)["t"].tolist() == [1, 2]


def test_case_66c_twin_native_complex128_loads_as_before() -> None:
    torch = pytest.importorskip("torch")
    loaded = ss.load(bytearray(ss.save({"c": np.array([1 + 2j, 5j])})), framework="torch")["c"]
    assert loaded.dtype == torch.complex128 and loaded.tolist() == [1 + 2j, 5j]
