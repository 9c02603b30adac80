"""Reading files written by safestructures 1.0.0: its schema format, rebuilt without importing anything it names.

1.0.0 stored ``{"data_type": T, "value": V, ...}`` nodes as JSON in its metadata (``_format.V1_SCHEMA_KEY``) and
its tensors under decimal counters. Built-in types are rebuilt here; tensor nodes become tensors of the framework the
load asks for, or else of the one they came from when the process has already imported it, or else numpy arrays (a file
never makes the load import a framework: frameworks.make_tensor decides); dataclasses (1.0.0 kept no class) come back as generic records; any other
type name is resolved only among the 1.0.0-style plugins passed to the load.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from . import _core
from ._errors import InvalidFileError, SafestructuresError, UnknownTypeError, shown
from ._format import V1_SCHEMA_KEY, V1_VERSION_KEY, file_json
from ._records import Record
from .plugins import Mode, _Serializer

__all__ = ["load_v1", "user_metadata"]

# 1.0.0's names for tensor types, and the framework each came from.
_TENSOR_TYPES = {
    "numpy.ndarray": "numpy",
    "torch.Tensor": "torch",
    "tensorflow.python.framework.ops.EagerTensor": "tensorflow",
    "jaxlib.xla_extension.ArrayImpl": "jax",
}


def user_metadata(metadata: dict[str, str] | None) -> dict[str, str] | None:
    """The caller's metadata of a 1.0.0 file (its metadata without the schema and its version; None when none is
    left)."""
    return {k: v for k, v in (metadata or {}).items() if k not in (V1_SCHEMA_KEY, V1_VERSION_KEY)} or None


class _V1Error(Exception):
    """A malformed 1.0.0 node; carries the path for the message, and the error code."""

    def __init__(self, message: str, code: str = "SchemaInvalid") -> None:
        super().__init__(message)
        self.code = code


class _Loader:
    def __init__(self, tensors: dict[str, Any], make: Any, context: dict[str, Any], max_depth: int) -> None:
        self.tensors = tensors
        self.make = make
        self.context = context
        self.max_depth = max_depth
        self.path: list[str] = []

    def where(self) -> str:
        return "$" + "".join(self.path)

    def fail(self, message: str, code: str = "SchemaInvalid") -> NoReturn:
        raise _V1Error(f"at {self.where()}: {message}", code)

    def count_hash(self, runs: _core.HashRuns, item: Any, what: str) -> None:
        """Counts the hash of a set's item or a mapping's key (TypeError when it has none): more than the core's
        limit of one hash value would make building the container quadratic, as in the loader of the current format."""
        value = hash(item)
        if not runs.add(value):
            self.fail(f"more than {runs.max_run} {what}s of this container have the same hash value ({value}), which "
                      "would make building it quadratic", "LimitExceeded")

    def child(self, part: str, node: Any) -> Any:
        self.path.append(part)
        if len(self.path) > self.max_depth:
            self.fail(f"the data nests deeper than the limit of {self.max_depth} levels")
        try:
            return self.build(node)
        finally:
            self.path.pop()

    def build(self, node: Any) -> Any:
        if type(node) is not dict or type(node.get("data_type")) is not str or "value" not in node:
            self.fail("a 1.0.0 node must be an object with a string 'data_type' and a 'value'")
        kind, value = node["data_type"], node["value"]
        if kind in ("NoneType", "None"):
            return None
        if kind in ("bool", "str"):
            if type(value) is not (bool if kind == "bool" else str):
                self.fail("a bool node needs true or false" if kind == "bool" else "a str node needs a string")
            return value
        if kind in ("int", "float", "complex"):
            if type(value) is not str:
                self.fail(f"an {kind} node needs its value as a string")
            try:
                return {"int": int, "float": float, "complex": complex}[kind](value)
            except ValueError as e:
                # Values read from the file are shown bounded: float()'s message repeats the whole text.
                reason = str(e) if len(str(e)) <= 200 else str(e)[:197] + "..."
                self.fail(f"bad {kind} {shown(value)}: {reason}")
        if kind in ("list", "tuple", "set"):
            if type(value) is not list:
                self.fail(f"a {kind} node needs an array")
            items = [self.child(f"[{i}]", item) for i, item in enumerate(value)]
            if kind == "list":
                return items
            if kind == "tuple":
                return tuple(items)
            runs = _core.HashRuns()
            try:
                for item in items:
                    self.count_hash(runs, item, "item")
                return set(items)
            except TypeError as e:
                self.fail(f"cannot build a set: {e}")
        if kind == "dict":
            keys = node.get("keys")
            if type(value) is not dict or type(keys) is not dict:
                self.fail("a dict node needs objects 'value' and 'keys'")
            out = {}
            runs = _core.HashRuns()
            for text, item in value.items():
                if text not in keys:
                    self.fail(f"the dict key {shown(text)} has no entry in 'keys'")
                key = self.child(f"[{json.dumps(text)}](key)", keys[text])
                try:
                    self.count_hash(runs, key, "key")
                    out[key] = self.child(f"[{json.dumps(text)}]", item)
                except TypeError as e:
                    self.fail(f"cannot use this key: {e}")
            return out
        if kind == "SafestructuresDataclass":
            if type(value) is not dict:
                self.fail("a dataclass node needs an object")
            return Record(kind, {name: self.child(f".{name}", item) for name, item in value.items()})
        if kind in _TENSOR_TYPES:
            if type(value) is not str or value not in self.tensors:
                self.fail(f"the schema refers to tensor {shown(value)}, which the file lacks")
            return self.make(value, _TENSOR_TYPES[kind])
        return self.plugin(kind, node)

    def plugin(self, kind: str, node: dict[str, Any]) -> Any:
        plugin = self.context.get("plugins", {}).get(kind)
        extra = {k: v for k, v in node.items() if k not in ("data_type", "value")}
        if plugin is None:
            if self.context.get("strict"):
                raise UnknownTypeError(f"at {self.where()}: the file names type {kind!r}, and no plugin passed to this load handles it")
            return Record(kind, {"value": node["value"], **extra})
        loader = self

        class Serializer(_Serializer):
            # 1.0.0 plugins hand nested 1.0.0 nodes back to the serializer.
            def deserialize(self, value: Any) -> Any:
                return loader.build(value)

        try:
            return plugin(Serializer(Mode.LOAD, _Tensors(self))).deserialize(node["value"], **extra)
        except SafestructuresError:
            raise
        except Exception as e:
            self.fail(f"plugin {plugin.__qualname__} cannot rebuild its {kind}: {type(e).__name__}: {e}")


class _Tensors(dict):  # type: ignore[type-arg]
    """The file's tensors as numpy arrays, built when a 1.0.0 TensorProcessor plugin asks for one by id."""

    def __init__(self, loader: _Loader) -> None:
        super().__init__()
        self._loader = loader

    def __missing__(self, name: str) -> Any:
        if name not in self._loader.tensors:
            raise KeyError(name)
        value = self[name] = self._loader.make(name, "numpy")
        return value


def load_v1(metadata: dict[str, str], tensors: dict[str, Any], make: Any, context: dict[str, Any], max_depth: int) -> Any:
    """The data of a 1.0.0 file. `tensors` maps tensor names to anything; `make(name, framework)` builds one."""
    version = metadata.get(V1_VERSION_KEY)
    if version != "1.0.0":
        raise InvalidFileError(f"the file claims safestructures schema version {version!r}; this release reads 1.0.0", code="SchemaVersion")
    try:
        schema = file_json(metadata[V1_SCHEMA_KEY], standard_numbers=False)
    except InvalidFileError:
        raise
    except (ValueError, RecursionError) as e:
        raise InvalidFileError(f"the 1.0.0 schema is not valid JSON: {e}", code="SchemaNotJson") from e
    available = {name: value for name, value in tensors.items() if name != "null"}
    loader = _Loader(available, make, context, max_depth)
    try:
        return loader.build(schema)
    except _V1Error as e:
        raise InvalidFileError(str(e), code=e.code) from None
    except RecursionError:
        raise InvalidFileError(f"at {loader.where()}: the 1.0.0 schema nests too deeply", code="NestingTooDeep") from None
