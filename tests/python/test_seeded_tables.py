"""Every hash table of the C++ core and the extension hashes with a seeded hash (include/safestructures/seeded_hash.hpp):
its keys may be chosen by a file, and std::hash's collisions can be computed (docs/security.md, case 26). The one table
of fixed keys (the tag names of format.cpp) and tables keyed by addresses (Python types met by a save), which no input
chooses, are the exceptions."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for d in ("src", "include") for p in sorted((ROOT / d).rglob("*")) if p.suffix in (".cpp", ".hpp")]
FIXED_KEYS = {"src/core/format.cpp"}  # the vocabulary's own tag names


def declared_tables(text: str) -> list[str]:
    """The template arguments of each std::unordered_map / unordered_set in C++ text, comments left out."""
    text = re.sub(r"//[^\n]*", "", text)
    tables = []
    for match in re.finditer(r"std::unordered_(?:map|set)<", text):
        depth, at = 1, match.end()
        while depth:
            depth += {"<": 1, ">": -1}.get(text[at], 0)
            at += 1
        tables.append(text[match.end():at - 1])
    return tables


def test_the_scan_sees_tables_and_their_hashes() -> None:
    assert declared_tables("std::unordered_map<std::string, std::vector<int>, SeededStringHash> a; // std::unordered_set<int>") == [
        "std::string, std::vector<int>, SeededStringHash"]


def test_every_table_hashes_with_a_seed() -> None:
    unseeded = []
    for path in SOURCES:
        name = path.relative_to(ROOT).as_posix()
        if name in FIXED_KEYS:
            continue
        text = path.read_text()
        unseeded += [f"{name}: std::unordered_*<{args}>" for args in declared_tables(text)
                     if "Seeded" not in args and not args.split(",")[0].strip().endswith("*")]
        unseeded += [f"{name}: std::hash" for _ in re.findall(r"std::hash<", re.sub(r"//[^\n]*", "", text))]
    assert unseeded == []
    assert sum(len(declared_tables(p.read_text())) for p in SOURCES) >= 15  # the scan found the tables it checks
