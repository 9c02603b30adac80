"""`import safestructures` stays light: no deep-learning framework is imported, before or after use."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FRAMEWORKS = ("torch", "tensorflow", "jax", "jaxlib", "flax", "keras", "paddle", "mlx")


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # -W error: any warning at import or use is a failure too.
    return subprocess.run([sys.executable, "-W", "error", "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_import_does_not_import_frameworks(tmp_path: Path) -> None:
    result = run_python(
        f"""
        import sys
        import safestructures
        loaded = sorted(name for name in {FRAMEWORKS!r} if name in sys.modules)
        print("LOADED", loaded)
        assert loaded == [], loaded
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout


def test_import_is_lazy_about_numpy_and_ml_dtypes(tmp_path: Path) -> None:
    # Documented: ml_dtypes (and the numpy adapter) load on first use, not at import.
    result = run_python(
        """
        import sys
        import safestructures
        assert "ml_dtypes" not in sys.modules
        assert "safestructures.frameworks.numpy" not in sys.modules
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr


def test_using_the_numpy_api_never_imports_frameworks(tmp_path: Path) -> None:
    # A meta-path finder makes any attempt to import a framework fail loudly, even one that would be caught.
    result = run_python(
        f"""
        import sys
        attempts = []

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {FRAMEWORKS!r}:
                    attempts.append(name)
                    raise ImportError("blocked: " + name)
                return None

        sys.meta_path.insert(0, Block())
        import numpy as np
        import safestructures
        safestructures.save_tensors({{"x": np.arange(6.0).reshape(2, 3)}}, "t.safetensors", {{"k": "v"}})
        loaded = safestructures.load_tensors("t.safetensors")
        assert loaded["x"].tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
        assert safestructures.load_metadata("t.safetensors") == {{"k": "v"}}
        try:
            safestructures.load_tensors("missing.safetensors")
        except FileNotFoundError:
            pass
        assert attempts == [], attempts
        assert not [name for name in sys.modules if name.split(".")[0] in {FRAMEWORKS!r}]
        print("OK")
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK"


@pytest.mark.parametrize("name", ["save_tensors", "load_tensors", "load_metadata", "SafestructuresError", "InvalidFileError", "InvalidArgumentError", "UnsupportedTypeError"])
def test_public_names(name: str) -> None:
    import safestructures

    assert name in safestructures.__all__
    assert getattr(safestructures, name) is not None
