"""The load walk finds dict keys in a cache shared by every load of the process, slotted by a key's length and three of
its bytes and compared word by word: keys that share a slot, keys differing in any one byte, keys of every length,
non-ASCII keys and loads of many distinct keys must all come back exactly as saved."""

from __future__ import annotations

import threading

import numpy as np

import safestructures


def _near_misses(length: int) -> list[tuple[str, str]]:
    """Pairs of keys of `length` characters differing in one position only, for every position: most share the
    cache's slot (which looks at the first, middle and last bytes), so only the comparison tells them apart."""
    base = "".join(chr(ord("a") + k % 26) for k in range(length))
    return [(base, base[:p] + "#" + base[p + 1:]) for p in range(length)]


def test_keys_differing_in_any_one_byte_stay_apart_across_loads() -> None:
    for length in range(1, 41):
        for first, second in _near_misses(length):
            saved_first, saved_second = safestructures.save({first: 1}), safestructures.save({second: 2})
            assert list(safestructures.load(saved_first).items()) == [(first, 1)]
            assert list(safestructures.load(saved_second).items()) == [(second, 2)]
            assert list(safestructures.load(saved_first).items()) == [(first, 1)]


def test_keys_differing_in_any_one_byte_stay_apart_in_one_record() -> None:
    records = [{first: k, second: -k, "t": np.arange(2)} for k, length in enumerate(range(1, 30))
               for first, second in _near_misses(length)]
    loaded = safestructures.load(safestructures.save(records))
    assert len(loaded) == len(records)
    for got, want in zip(loaded, records):
        assert list(got) == list(want)
        assert [got[key] for key in list(want)[:2]] == [want[key] for key in list(want)[:2]]


def test_many_distinct_keys_and_non_ascii_keys_load_exactly() -> None:
    data = {f"key{k}": k for k in range(5000)} | {"é": 1, "ключ": 2, "键": 3, "": 4, "\ud800x": 5}
    for _ in range(2):
        loaded = safestructures.load(safestructures.save(data))
        assert list(loaded.items()) == list(data.items())
        assert all(type(key) is str for key in loaded)


def test_loaded_keys_are_interned_strs_shared_between_loads() -> None:
    first = safestructures.load(safestructures.save({"shared_key_name": 1}))
    second = safestructures.load(safestructures.save([{"shared_key_name": 2}]))
    (a,), (b,) = list(first), list(second[0])
    assert a == b == "shared_key_name" and a is b


def test_loads_in_threads_get_their_own_keys() -> None:
    payloads = [safestructures.save([{f"k{t}_{j}": j for j in range(20)} for _ in range(50)]) for t in range(4)]
    errors: list[str] = []

    def loading(t: int) -> None:
        for _ in range(30):
            loaded = safestructures.load(payloads[t])
            if any(list(record) != [f"k{t}_{j}" for j in range(20)] for record in loaded):
                errors.append(f"thread {t} got another thread's keys")

    threads = [threading.Thread(target=loading, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
