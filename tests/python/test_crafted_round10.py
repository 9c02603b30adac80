"""Crafted files of the tenth round's lead (docs/security.md case 94): a Decimal and a big int of one hash value in
one set, which Python compares by converting the int to decimal, at a cost that grows with the square of its size."""

from __future__ import annotations

import decimal
from pathlib import Path

import pytest

import crafted
import safestructures as ss
from test_crafted_meaning import refused, run_attack

ROUTES = {"load_file": "ss.load_file(path)", "open-load": "ss.open(path).load()", "open-item": "ss.open(path)[0].load()"}


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("case", ["decimals_beside_a_big_int", "frozensets_of_decimals_and_a_big_int"])
def test_case_94_a_decimal_and_a_big_int_of_one_hash_value_are_not_compared_past_the_budget(tmp_path: Path, case: str, route: str) -> None:
    # Before: each comparison converted the 4-million-bit int to decimal (21 s); 1,000 sets referencing the int's tuple
    # (or its frozenset) beside 31 Decimals (or a frozenset of them) of its hash value made 31,000 (1,000) of them:
    # 7.5 days (6 hours) for a file of 3.5 MB (1.1 MB).
    outcome = run_attack(tmp_path, getattr(crafted, case)(4_000_000, sets=1000), ROUTES[route])
    refused(outcome, "LimitExceeded", "at $[0][1]: this item has the hash value (")
    assert "of earlier items of this container, and big ints in them: comparing them (a Decimal compares with an int by converting the int" in outcome["message"]
    assert outcome["seconds"] < 10, outcome


def test_case_94_a_set_of_decimals_and_an_int_of_their_hash_value_still_loads() -> None:
    # The budget counts the conversions: an int of 14,300 bits (Python's 4,300-digit limit for its own conversions)
    # beside 31 Decimals of its hash value, in three sets, costs milliseconds.
    loaded = ss.load(crafted.decimals_beside_a_big_int(14_300, sets=3))
    big = (1 << 14_300) + 12_345
    same_hash = big % crafted.HASH_MODULUS
    expected = {(big,)} | {(decimal.Decimal(same_hash + k * crafted.HASH_MODULUS),) for k in range(1, 32)}
    assert type(loaded) is list and len(loaded) == 3
    for each in loaded:
        assert type(each) is set and each == expected
        assert sorted(type(item[0]).__name__ for item in each) == ["Decimal"] * 31 + ["int"]
    assert loaded[1] & loaded[2] == expected and next(t for t in loaded[0] if type(t[0]) is int) is next(t for t in loaded[2] if type(t[0]) is int)
    frozensets = ss.load(crafted.frozensets_of_decimals_and_a_big_int(2_000, sets=50))
    assert len(frozensets) == 50 and all(type(s) is set and len(s) == 2 for s in frozensets)
    assert {len(f) for f in frozensets[49]} == {31}


def test_case_94_big_ints_of_one_hash_value_without_decimals_load(tmp_path: Path) -> None:
    # 2**64 hashes as 8 does: a real set may hold both.
    path = tmp_path / "ints.safetensors"
    ss.save_file({"s": {2**64, 8, 2**64 + crafted.HASH_MODULUS * 5}, "k": {2**64: "a", 8: "b"}}, path)
    loaded = ss.load_file(path)
    assert loaded == {"s": {2**64, 8, 2**64 + crafted.HASH_MODULUS * 5}, "k": {2**64: "a", 8: "b"}}
    assert type(loaded["s"]) is set and type(loaded["k"]) is dict
