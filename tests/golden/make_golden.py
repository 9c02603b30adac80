"""Write the golden files of tests/golden/files from the corpus (corpus.py), with the safestructures being imported.

Run it only to pin the bytes the current code writes (the files were made with main before the format's owner was
redone, issue 15): ``PYTHONPATH=<staged build> python tests/golden/make_golden.py [CASE...]`` (the C++ API's golden file,
cpp_value.safetensors, is written by ``SAFESTRUCTURES_WRITE_GOLDEN=1 core_tests --gtest_filter=GoldenBytes.*``). Each case is saved twice
and the two saves must agree byte for byte, so a golden file never pins something that varies between saves. A case
whose framework is not importable is left as it is, with a warning; an isolated one (paddle) runs in a fresh
interpreter.
"""

from __future__ import annotations

import importlib
import lzma
import pathlib
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import corpus  # noqa: E402


def contents(path: pathlib.Path) -> dict[str, bytes]:
    """A saved file's bytes, or every file of a sharded folder by name (hidden files included)."""
    if path.is_dir():
        return {p.name: p.read_bytes() for p in sorted(path.iterdir())}
    return {"": path.read_bytes()}


def make(name: str, case: corpus.Case) -> None:
    """Save ``case`` twice, check the saves agree, and store the result as its golden file."""
    for module in case.requires:
        try:
            importlib.import_module(module)
        except ImportError:
            print(f"warning: {name} skipped, {module} is not importable", file=sys.stderr)
            return
    with tempfile.TemporaryDirectory() as tmp:
        first, second = pathlib.Path(tmp, "first"), pathlib.Path(tmp, "second")
        corpus.save_case(case, first)
        corpus.save_case(case, second)
        if contents(first) != contents(second):
            raise SystemExit(f"{name}: two saves of the same value differ")
        golden = case.golden_path(name)
        if golden.is_dir():
            shutil.rmtree(golden)
        if case.kind == "sharded":
            shutil.copytree(first, golden)
        elif case.compressed:
            golden.write_bytes(lzma.compress(first.read_bytes(), preset=9 | lzma.PRESET_EXTREME))
        else:
            shutil.copyfile(first, golden)
    print(f"{name}: {golden.relative_to(corpus.FILES.parent)}")


def main(names: list[str]) -> None:
    corpus.FILES.mkdir(exist_ok=True)
    for name in names or list(corpus.CASES):
        case = corpus.CASES[name]
        if case.isolated and names != [name]:
            subprocess.run([sys.executable, __file__, name], check=True)
        else:
            make(name, case)


if __name__ == "__main__":
    main(sys.argv[1:])
