"""Files crafted against the readers written in Python (the 1.0.0 reader, distributed checkpoints' indexes) and the
paths a user gives: each attack runs in a fresh interpreter with a timeout and an address-space cap (the harness of
test_crafted_meaning.py), with its legitimate twin, which must keep loading. docs/security.md's table lists them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import crafted
import safestructures as ss
from test_crafted_meaning import refused, run_attack

# --- 19. colliding hashes in a 1.0.0 file --------------------------------------------------------------------------------


@pytest.mark.parametrize(("container", "what"), [("set", "items"), ("dict", "keys")])
def test_case_19_v1_sets_and_dicts_refuse_runs_of_one_hash_value(tmp_path: Path, container: str, what: str) -> None:
    # 50,000 ints that all hash to 0 (3-6 MB): building the set or dict took 90 s and more, quadratic.
    outcome = run_attack(tmp_path, crafted.v1_colliding_keys(50_000, container), "return len(ss.load_file(path))")
    refused(outcome, "LimitExceeded", f"at $: more than 32 {what} of this container have the same hash value (0), "
                                      "which would make building it quadratic")


@pytest.mark.parametrize("container", ["set", "dict"])
def test_case_19_v1_sets_and_dicts_of_up_to_32_equal_hashes_load(tmp_path: Path, container: str) -> None:
    path = tmp_path / "v1.safetensors"
    path.write_bytes(crafted.v1_colliding_keys(32, container))
    expected = {k * (2**61 - 1) for k in range(32)}
    data = ss.load_file(path)
    assert type(data) is (set if container == "set" else dict)
    assert set(data) == expected and all(type(k) is int for k in data)
    if container == "dict":
        assert list(data.values()) == [None] * 32
    path.write_bytes(crafted.v1_colliding_keys(33, container))
    with pytest.raises(ss.InvalidFileError, match="more than 32") as info:
        ss.load_file(path)
    assert info.value.code == "LimitExceeded"


def test_case_19_v1_unhashable_keys_still_say_so(tmp_path: Path) -> None:
    path = tmp_path / "v1.safetensors"
    path.write_bytes(crafted.v1_file_bytes({"data_type": "dict", "value": {"a": {"data_type": "int", "value": "1"}},
                                            "keys": {"a": {"data_type": "list", "value": []}}}))
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load_file(path)
    assert str(info.value) == "at $: cannot use this key: unhashable type: 'list'" and info.value.code == "SchemaInvalid"
    path.write_bytes(crafted.v1_file_bytes({"data_type": "set", "value": [{"data_type": "list", "value": []}]}))
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load_file(path)
    assert str(info.value) == "at $: cannot build a set: unhashable type: 'list'" and info.value.code == "SchemaInvalid"


# --- 20. a warning per object, under long keys ----------------------------------------------------------------------------

WARNINGS_OF_A_CHANGED_CLASS = """
import dataclasses, warnings
@dataclasses.dataclass
class P:
    x: int
P.__qualname__ = "P"
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    data = ss.load_file(path, types=[P])
texts = [str(w.message) for w in caught]
while type(data) is dict:
    (data,) = data.values()
return [len(texts), max(map(len, texts)), texts[0], texts[-1], [p.x for p in data] == list(range(200))]
"""


def test_case_20_warnings_name_paths_under_long_keys_briefly(tmp_path: Path) -> None:
    # 200 objects under 20 keys of 100,000 characters (2 MB): each warning named the whole path, 2 MB, 400 MB in all.
    outcome = run_attack(tmp_path, crafted.changed_objects_under_long_keys(20, 100_000, 200), WARNINGS_OF_A_CHANGED_CLASS)
    assert outcome["outcome"] == "ok", outcome
    count, longest, first, last, values_kept = outcome["result"]
    where = "$" + "".join(f'["{level:03}{"k" * 61}"... (100000 bytes)]' for level in reversed(range(20)))
    what = "class '__main__.P' no longer declares field 'y', which the file has: dropped"
    # A load warns of the first 20 objects only (case 108): Python keeps each distinct warning text for good.
    assert (count, longest, values_kept) == (20, len(last), True)
    assert first == f"at {where}[0]: {what}"
    assert last == f"at {where}[19]: {what}; this load warns of no more objects that drop fields"
    assert outcome["peak_mb"] < 200, outcome


def test_case_20_warnings_name_short_keys_whole(tmp_path: Path) -> None:
    outcome = run_attack(tmp_path, crafted.changed_objects_under_long_keys(2, 64, 200), WARNINGS_OF_A_CHANGED_CLASS)
    key = "{:03}" + "k" * 61
    assert outcome["result"][2] == (f'at $["{key.format(1)}"]["{key.format(0)}"][0]: class \'__main__.P\' no longer '
                                     "declares field 'y', which the file has: dropped")


# --- 21. a distributed checkpoint's index --------------------------------------------------------------------------------

def dcp_dir(tmp_path: Path, change: Any) -> Path:
    """A distributed checkpoint of a 2x2 tensor "w", its index changed by ``change(index)`` (which may return the index's
    text instead)."""
    torch = pytest.importorskip("torch")
    from safestructures import distributed

    path = tmp_path / "dcp"
    distributed.save({"w": torch.ones(2, 2)}, path)
    index_file = path / ss._sharded.INDEX_NAME
    index = json.loads(index_file.read_text())
    text = change(index)
    index_file.write_text(text if isinstance(text, str) else json.dumps(index))
    return path


def tensor_entry(index: dict[str, Any]) -> dict[str, Any]:
    return index["metadata"]["safestructures_dcp"]["tensors"]["w"]


def set_size(size: list[int], chunk_sizes: list[int] | None = None) -> Any:
    def change(index: dict[str, Any]) -> None:
        tensor_entry(index)["size"] = size
        tensor_entry(index)["chunks"][0]["sizes"] = chunk_sizes if chunk_sizes is not None else size
        tensor_entry(index)["chunks"][0]["offsets"] = [0] * len(size)
    return change


def overlapping_chunk(offsets: list[int]) -> Any:
    """The tensor made 4x2, its one 2x2 chunk joined by a second one (the same stored 2x2) at ``offsets``: 8 elements
    in all, as many as the size has, but not tiling it."""
    def change(index: dict[str, Any]) -> None:
        tensor_entry(index)["size"] = [4, 2]
        tensor_entry(index)["chunks"].append(dict(tensor_entry(index)["chunks"][0], offsets=offsets))
    return change


def test_case_21_chunks_that_overlap_are_refused(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from safestructures import distributed

    with pytest.raises(ss.InvalidFileError, match=r'two chunks of "w" start at \[0, 0\]'):
        distributed.load(dcp_dir(tmp_path / "same", overlapping_chunk([0, 0])))
    # Rows 0-2 covered, row 3 by none: loaded with zeros there (and, before zeros, what the memory held) until the
    # index's chunks were checked to tile the tensor.
    path = dcp_dir(tmp_path / "overlap", overlapping_chunk([1, 0]))
    message = r'the chunks of "w" at \[0, 0\] and \[1, 0\] overlap, leaving elements of its size \[4, 2\] in none'
    with pytest.raises(ss.InvalidFileError, match=message):
        distributed.load(path)
    with pytest.raises(ss.InvalidFileError, match=message):
        ss.load_file(path)


def grid(rows: int, columns: int, height: int = 2, width: int = 3) -> list[tuple[list[int], list[int]]]:
    """The chunks of a (rows * height) x (columns * width) tensor split into a grid, in an order no sweep starts from."""
    boxes = [([r * height, c * width], [height, width]) for r in range(rows) for c in range(columns)]
    return boxes[1::2] + boxes[::2]


def test_case_21_chunks_that_tile_pass_the_check_of_overlaps() -> None:
    pytest.importorskip("torch")
    from safestructures.distributed._index import _overlapping

    file = Path("index.json")
    for boxes in (grid(64, 64), grid(1, 3000), grid(3000, 1), grid(5, 7) + [([10, 0], [0, 21]), ([3, 3], [0, 0])]):
        assert _overlapping(boxes, '"w"', file) is None
    three_d = [([a, b, c], [1, 2, 4]) for a in range(8) for b in range(0, 16, 2) for c in range(0, 32, 4)]
    assert _overlapping(three_d, '"w"', file) is None
    # One element shared, wherever it lies: a corner, an edge, one chunk inside another.
    assert _overlapping(grid(64, 64) + [([127, 191], [1, 1])], '"w"', file) == ([126, 189], [127, 191])
    assert _overlapping([([0, 0], [4, 4]), ([1, 1], [1, 1])], '"w"', file) == ([0, 0], [1, 1])
    assert _overlapping([([0, 2], [4, 2]), ([3, 0], [1, 3])], '"w"', file) == ([0, 2], [3, 0])
    assert _overlapping([([0, 0], [2, 2]), ([2, 2], [2, 2]), ([0, 2], [2, 2])], '"w"', file) is None


def test_case_21_chunks_too_many_to_check_are_refused_in_seconds() -> None:
    pytest.importorskip("torch")
    from safestructures.distributed._index import MAX_CHUNK_PAIRS, _overlapping

    # 250,000 chunks of a 500 x 500 grid: a sweep meets 500 open chunks at each start, 125 million pairs.
    with pytest.raises(ss.InvalidFileError, match=r'index.json: the chunks of "w" are too many, laid out as they are, '
                                                  rf'to check that no two overlap \(more than {MAX_CHUNK_PAIRS:,} pairs\)') as e:
        _overlapping(grid(500, 500), '"w"', Path("index.json"))
    assert e.value.code == "LimitExceeded"


@pytest.mark.parametrize(("change", "message"), [
    (lambda index: json.dumps(index)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "model.safetensors.index.json: the index nests too deeply to be one"),
    (set_size([10**30, 2]), 'the size of "w" must be a list of non-negative 64-bit integers, got [1000000000000000000000000000000, 2]'),
    (set_size([2**40, 2**40]), 'tensor "w" has more than 2**63 elements'),
    (set_size([2, 2], [2, 1]), 'the chunks of "w" hold 2 elements, its size [2, 2] has 4'),
    (set_size([2, 4], [2, 2]), 'the chunks of "w" hold 4 elements, its size [2, 4] has 8'),
    (set_size([2**62]), "the checkpoint's tensor \"w\" of size [4611686018427387904] cannot be made: Storage size calculation overflowed"),
])
def test_case_21_bad_dcp_indexes_raise_invalid_file_errors(tmp_path: Path, change: Any, message: str) -> None:
    from safestructures import distributed

    path = dcp_dir(tmp_path, change)
    with pytest.raises(ss.InvalidFileError) as info:
        distributed.load(path)
    assert message in str(info.value)


def test_case_21_a_dcp_index_that_is_no_utf8_raises_an_invalid_file_error(tmp_path: Path) -> None:
    # Read as UTF-8 text outside the parse's error handling, it raised UnicodeDecodeError.
    from safestructures import distributed

    path = dcp_dir(tmp_path, lambda index: json.dumps(index))
    (path / ss._sharded.INDEX_NAME).write_bytes(b'{"metadata": {"\xff": 1}, "weight_map": {}}')
    with pytest.raises(ss.InvalidFileError) as info:
        distributed.load(path)
    assert str(info.value).startswith(f"{path / ss._sharded.INDEX_NAME}: not a JSON index: ")


# --- 22. a path with an index too long for int() --------------------------------------------------------------------------

def test_case_22_get_refuses_an_index_of_thousands_of_digits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safestructures._cli import main

    path = tmp_path / "small.safetensors"
    ss.save_file({"a": [1, 2, 3]}, path)
    assert main(["get", str(path), '$["a"][' + "1" * 5000 + "]"]) == 2
    assert capsys.readouterr().err == "safestructures get: cannot read the path at character 7: an index of 5,000 digits\n"
    assert main(["get", str(path), '$["a"][' + "0" * 3999 + "2]"]) == 0
    assert capsys.readouterr().out == "3\n"


# --- 23. loading the tensors of a file object one by one -----------------------------------------------------------------

def test_case_23_ranged_loads_one_by_one_are_linear(tmp_path: Path) -> None:
    # 40,000 one-element tensors, every other loaded one by one through a file object: each load walked and sorted every
    # range fetched so far (16,000 tensors: 9.7 s; 40,000: about a minute).
    data = ss.save({f"t{i:06}": np.full(1, i, dtype=np.int32) for i in range(40_000)})
    outcome = run_attack(tmp_path, data, """
with open(path, "rb") as fo:
    f = ss.open(fo)
    keys = f.keys()
    loaded = [f[k].load() for k in keys[::2]]
    again = f[keys[0]].load()
    return [len(loaded), [int(x[0]) for x in loaded[:3]], int(loaded[-1][0]), int(again[0])]
""")
    assert outcome["outcome"] == "ok", outcome
    assert outcome["result"] == [20_000, [0, 2, 4], 39_998, 0]


# --- 24. keys aimed at the buckets of the core's hash tables --------------------------------------------------------------

def test_case_24_int_keys_aimed_at_one_bucket_are_counted_in_linear_time(tmp_path: Path) -> None:
    # Distinct Python hashes k * 351061, 351,061 being the bucket count libstdc++'s unordered_map reaches for the
    # 172,933rd to 351,061st key: the table counting a dict's hashes (the cap on equal ones) put them all in one
    # bucket, so 340,000 of them (5.4 MB) took minutes; the count's hash is seeded now.
    data = crafted.file_bytes({"$": "dict", "items": [[k * 351_061, k % 7] for k in range(1, 340_001)]})
    outcome = run_attack(tmp_path, data, """
d = ss.load_file(path)
return [len(d), d[351_061], d[340_000 * 351_061], sum(d.values())]
""")
    assert outcome["outcome"] == "ok", outcome
    assert outcome["result"] == [340_000, 1, 340_000 % 7, sum(k % 7 for k in range(1, 340_001))]


# --- 25. messages of the 1.0.0 reader that echo a long value --------------------------------------------------------------

@pytest.mark.parametrize(("node", "message"), [
    ({"data_type": "float", "value": "x" * 10_000_000},
     "at $: bad float '" + "x" * 37 + "..." + "x" * 38 + "': could not convert string to float: '" + "x" * 161 + "..."),
    ({"data_type": "numpy.ndarray", "value": "y" * 10_000_000},
     "at $: the schema refers to tensor '" + "y" * 37 + "..." + "y" * 38 + "', which the file lacks"),
    ({"data_type": "dict", "value": {"z" * 10_000_000: {"data_type": "NoneType", "value": None}}, "keys": {}},
     "at $: the dict key '" + "z" * 37 + "..." + "z" * 38 + "' has no entry in 'keys'"),
])
def test_case_25_v1_messages_show_long_values_bounded(tmp_path: Path, node: dict[str, Any], message: str) -> None:
    path = tmp_path / "v1.safetensors"
    path.write_bytes(crafted.v1_file_bytes(node))
    with pytest.raises(ss.InvalidFileError) as info:
        ss.load_file(path)
    assert str(info.value) == message and info.value.code == "SchemaInvalid"


# --- 26. names aimed at one bucket of the core's string tables --------------------------------------------------------

@pytest.fixture(scope="module")
def names_of_one_std_hash() -> list[str]:
    return crafted.std_hash_colliding_names(150_000)


def test_case_26_tensor_names_of_one_std_hash_are_indexed_in_linear_time(tmp_path: Path, names_of_one_std_hash: list[str]) -> None:
    # 150,000 tensor names of one libstdc++ std::hash (12.7 MB): the header's index of names put them all in one
    # bucket, quadratic (40,000 of them: 7 s). The core's tables keyed by a file's strings use a seeded SipHash now.
    names = names_of_one_std_hash
    outcome = run_attack(tmp_path, crafted.plain_file_of_names(names), f"""
d = ss.load_file(path)
f = ss.open(path)
return [len(d), len(f.keys()), f[{names[-1]!r}].load().dtype.name, d[{names[0]!r}].shape, sorted(d) == sorted(f.keys())]
""")
    assert outcome["outcome"] == "ok", outcome
    assert outcome["result"] == [150_000, 150_000, "float32", [0], True]


def test_case_26_dict_keys_of_one_std_hash_load_in_linear_time(tmp_path: Path, names_of_one_std_hash: list[str]) -> None:
    # The same names as the keys of one dict (5.3 MB): the load's table of keys decoded so far was the bucket.
    names = names_of_one_std_hash
    outcome = run_attack(tmp_path, crafted.file_bytes({k: i for i, k in enumerate(names)}), f"""
d = ss.load_file(path)
return [len(d), d[{names[0]!r}], d[{names[-1]!r}], list(d)[:3]]
""")
    assert outcome["outcome"] == "ok", outcome
    assert outcome["result"] == [150_000, 0, 149_999, names[:3]]
