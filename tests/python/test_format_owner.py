"""The file format has one owner: the C++ vocabulary (include/safestructures/format.hpp) spells the tags, the
reserved names and the members of tensor and bytes nodes (and a record's "type"); the Python layer takes them from
_core.FORMAT (through _format.py: TAG, FIELD...) and spells them nowhere else; every product file stays under 600
lines."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from safestructures import _core, _format

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = [p for d in ("python", "src", "include") for p in sorted((ROOT / d).rglob("*")) if p.suffix in (".py", ".cpp", ".hpp")]
# Tags that are also ordinary words of Python (type names, field names): their spelling elsewhere usually means
# something else (a numpy dtype kind, a 1.0.0 data_type, a field), so they are not counted.
COMMON_WORDS = {"int", "float", "str", "bytes", "bytearray", "list", "tuple", "set", "dict", "complex", "range", "slice",
                "date", "time", "path", "object", "tensor", "enum", "datetime"}
TAGS = sorted(tag for _, tag in _core.FORMAT["kinds"].values() if tag and tag not in COMMON_WORDS)
RESERVED = [_format.SCHEMA_KEY, _format.SPILL_TENSOR, _format.V1_SCHEMA_KEY, _format.V1_VERSION_KEY, _format.RECORDING_KEY]
PYTHON = [p for p in PRODUCT if p.suffix == ".py" and p != ROOT / "python" / "safestructures" / "_format.py"]
FIELDS = {value for name, value in vars(_format.FIELD).items() if not name.startswith("_")}
# Members whose names mean nothing else in the package: spelled nowhere else at all. The others ("name", "shape"...)
# are ordinary words (and keys of what describe() and the command line print): spelled nowhere where a node's
# members are read or written (``member_spellings``).
TENSOR_ONLY = sorted(FIELDS - {"name", "type", "tensor", "storage", "offset", "shape", "dtype"})


def python_literals(path: Path) -> set[str]:
    """Every str constant of a module that is not a docstring."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings}


def cpp_literals(path: Path) -> set[str]:
    """Every string literal of a C++ file, comments left out."""
    text = re.sub(r"//[^\n]*", "", path.read_text())
    return set(re.findall(r'"((?:[^"\\\n]|\\.)*)"', text))


def literals(path: Path) -> set[str]:
    return python_literals(path) if path.suffix == ".py" else cpp_literals(path)


@pytest.fixture(scope="module")
def spelled() -> dict[Path, set[str]]:
    return {path: literals(path) for path in PRODUCT}


@pytest.mark.parametrize("tag", TAGS)
def test_each_tag_is_spelled_by_the_vocabulary_only(tag: str, spelled: dict[Path, set[str]]) -> None:
    where = sorted(str(p.relative_to(ROOT)) for p, found in spelled.items() if tag in found)
    assert where == ["include/safestructures/format.hpp"]


@pytest.mark.parametrize("name", RESERVED)
def test_each_reserved_name_is_spelled_by_the_vocabulary_only(name: str, spelled: dict[Path, set[str]]) -> None:
    where = sorted(str(p.relative_to(ROOT)) for p, found in spelled.items() if name in found)
    assert where == ["include/safestructures/format.hpp"]


def test_the_python_names_are_the_core_ones() -> None:
    assert _format.TAG.NamedTuple == "namedtuple"
    assert _format.TAG.BigInt == "int"
    assert _format.KIND.BigInt == "bigint"
    assert _format.TAG.TorchDtype == "torch.dtype"
    assert (_format.SCHEMA_KEY, _format.SPILL_TENSOR, _format.SAVE_KEY) == (
        "__safestructures__", "__safestructures_schema__", "__safestructures_save__")
    assert (_format.V1_SCHEMA_KEY, _format.V1_VERSION_KEY) == ("_safestructures_schema_", "_safestructures_schema_version_")
    assert _format.TENSOR_TAGS == {"tensor", "bytes", "bytearray"}
    assert _format.DTYPE_NUMPY_NAMES["BF16"] == "bfloat16" and _format.DTYPE_BITS["F4"] == 4


def member_spellings(source: str) -> list[str]:
    """The names of FIELD spelled as literals where a node's members are read or written: an argument of a tree
    view's ``.field(...)``, a key of ``fields`` (subscript, ``get``, ``in``, ``update``, a dict assigned to it), or
    an argument of a call given ``fields``."""
    found = []

    def is_fields(node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and node.id == "fields"

    def member(node: ast.AST | None) -> None:
        if isinstance(node, ast.Constant) and node.value in FIELDS:
            found.append(node.value)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and (func.attr == "field" or is_fields(func.value)):
                for arg in node.args:
                    member(arg)
                found.extend(k.arg for k in node.keywords if k.arg in FIELDS and is_fields(func.value))
            elif any(is_fields(arg) for arg in node.args):
                for arg in node.args:
                    member(arg)
        elif isinstance(node, ast.Subscript) and is_fields(node.value):
            member(node.slice)
        elif isinstance(node, ast.Compare) and any(is_fields(c) for c in node.comparators):
            member(node.left)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(is_fields(t) for t in targets):
                for key in node.value.keys:
                    member(key)
    return found


def test_the_member_check_finds_members_spelled() -> None:
    assert sorted(member_spellings(
        'fields.get("storage"); fields["fw"]; "stride" in fields; fields.update(x2=1); view.field(i, "type"); '
        'fields: dict = {"name": 1, "v": 2}; text_field(fields, "dtype"); fields.get(FIELD.shape); out["shape"]'
    )) == ["dtype", "fw", "name", "storage", "stride", "type", "x2"]


@pytest.mark.parametrize("path", PYTHON, ids=lambda p: str(p.relative_to(ROOT)))
def test_node_members_are_named_through_the_field_vocabulary(path: Path) -> None:
    assert member_spellings(path.read_text()) == []


@pytest.mark.parametrize("member", TENSOR_ONLY)
def test_each_tensor_member_is_spelled_by_the_field_vocabulary_only(member: str, spelled: dict[Path, set[str]]) -> None:
    where = sorted(str(p.relative_to(ROOT)) for p, found in spelled.items() if member in found)
    assert where == ["include/safestructures/format.hpp"]


def test_the_field_vocabulary() -> None:
    F = _format.FIELD
    assert (F.name, F.storage, F.tensor, F.offset, F.shape, F.stride, F.dtype) == (
        "name", "storage", "tensor", "offset", "shape", "stride", "dtype")
    assert (F.framework, F.pairs, F.base64, F.type, F.grad, F.param, F.variable, F.trainable) == (
        "fw", "x2", "b64", "type", "grad", "param", "variable", "trainable")
    assert _format.TENSOR_NAME_FIELDS == ("name", "storage", "tensor")


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(ROOT)))
def test_product_files_stay_under_600_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 600
