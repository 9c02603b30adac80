"""docs/plugins.md stays correct: every ```python block of the guide runs, in order, in one namespace."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"

pytestmark = pytest.mark.usefixtures("clean_registry")


def python_blocks(text: str) -> list[str]:
    """The code of every fenced block opened with ```python, in order."""
    return re.findall(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, flags=re.DOTALL | re.MULTILINE)


def test_python_blocks_are_found() -> None:
    blocks = python_blocks(GUIDE.read_text(encoding="utf-8"))
    fences = len(re.findall(r"^```python", GUIDE.read_text(encoding="utf-8"), flags=re.MULTILINE))
    assert len(blocks) == fences >= 6
    assert python_blocks("a\n```python\nx = 1\n```\nb\n```\nnot python\n```\n```python\ny = 2\n```\n") == ["x = 1\n", "y = 2\n"]


def test_the_guide_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # The blocks run as the body of a module of their own, as a reader's script would.
    module = types.ModuleType("plugins_guide")
    monkeypatch.setitem(sys.modules, "plugins_guide", module)
    namespace = module.__dict__
    for number, block in enumerate(python_blocks(GUIDE.read_text(encoding="utf-8")), 1):
        # dont_inherit: this test module's `from __future__ import annotations` must not leak into the guide's code.
        code = compile(block, f"{GUIDE.name}, python block {number}", "exec", dont_inherit=True)
        try:
            exec(code, namespace)
        except Exception as error:
            raise AssertionError(f"python block {number} of {GUIDE.name} fails:\n{block}") from error
    # The guide's objects are what it says they are.
    ss = namespace["ss"]
    assert type(namespace["restored"]) is namespace["ModelOutput"]
    assert type(namespace["tok"]) is namespace["Tokenizer"]
    assert type(namespace["back"]) is namespace["Interval"]
    assert type(namespace["temperature"]) is namespace["Temperature"]
    assert namespace["record"].type_name == "plugins_guide.ModelOutput"
    # What the guide says about the file: readable tensor names, each stored once.
    from conftest import schema_of, tensor_names

    blob = ss.save({"step": 3, "output": namespace["out"]})
    assert sorted(tensor_names(blob)) == ["output.hidden_states.0", "output.logits"]
    assert schema_of(blob)["root"]["output"]["type"] == "plugins_guide.ModelOutput"
