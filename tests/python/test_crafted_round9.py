"""Crafted files of the ninth round's lead (docs/security.md cases 90 and 93): what a load leaves behind in the process
once its values are gone, and what its warnings say."""

from __future__ import annotations

import dataclasses
import enum
import gc
from pathlib import Path

from typing import Any

import pytest

import crafted
import safestructures as ss


class Perm(enum.IntFlag):
    R = 4
    W = 2
    X = 1


class Mode(enum.Flag):
    A = 1
    B = 2


def test_case_90_flag_values_a_file_names_are_not_cached_in_the_class(tmp_path: Path, clean_registry: Any) -> None:
    # Before: each distinct value with bits no member has (an IntFlag keeps them) was cached in Perm's
    # _value2member_map_ for good: a 200,000-value file kept 79 MiB after its values were dropped, and each new file
    # grew it again.
    ss.register(Perm)
    values = [8 * i + 1 for i in range(5000)]
    path = tmp_path / "flags.safetensors"
    path.write_bytes(crafted.file_bytes(
        [{"$": "enum", "type": f"{__name__}.Perm", "name": None, "value": v} for v in values]
        + [{"$": "enum", "type": f"{__name__}.Perm", "name": "R", "value": 4}]))
    cached = dict(Perm._value2member_map_)
    loaded = ss.load_file(path)
    assert [type(v) for v in loaded] == [Perm] * 5001
    assert [int(v) for v in loaded[:-1]] == values
    assert loaded[-1] is Perm.R  # a member keeps its identity
    nine = loaded[1]
    del loaded
    gc.collect()
    assert Perm._value2member_map_ == cached
    assert nine == Perm.X | 8 and int(nine) == 9
    # Combinations of members are cached as Python caches them: the one the program made, or the one the load made
    # is the program's (a plain Flag compares them by identity).
    both = Perm.R | Perm.W
    path.write_bytes(crafted.file_bytes({"$": "enum", "type": f"{__name__}.Perm", "name": None, "value": 6}))
    assert ss.load_file(path) is both
    ss.register(Mode)
    path.write_bytes(crafted.file_bytes({"$": "enum", "type": f"{__name__}.Mode", "name": None, "value": 3}))
    loaded_first = ss.load_file(path)
    assert type(loaded_first) is Mode and loaded_first == Mode.A | Mode.B and loaded_first is Mode.A | Mode.B


@dataclasses.dataclass
class Point:
    x: int = 0


def test_case_93_a_warning_names_the_fields_a_class_dropped_within_bounds(clean_registry: Any) -> None:
    # Before: the names were written whole: a 4 KB file of two 100,000-character field names made a 200,086-character
    # warning (a load's errors are cut at 4 KB; its warnings were not), and a C1 control went through repr() only.
    ss.register(Point)
    node = {"$": "dataclass", "type": f"{__name__}.Point", "fields": {"x": 1, "q" * 100_000: 2, "\x9b\u202e": 3}}
    with pytest.warns(ss.SafestructuresWarning) as caught:
        assert ss.load(crafted.file_bytes(node)) == Point(1)
    assert [str(w.message) for w in caught] == [
        f"at $: class '{__name__}.Point' no longer declares fields '{'q' * 37}...{'q' * 38}', '\\x9b\\u202e', which the "
        "file has: dropped"]
