"""The package's modules import one another without a cycle, counting imports inside functions (only those under
``if TYPE_CHECKING:`` are left out): each concern sits above what it uses, options and limits at the bottom."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "safestructures"
#: Compiled modules of the package (no source to parse; they import nothing of the package).
EXTENSIONS = {"safestructures._core"}


def module_names() -> dict[str, tuple[Path, bool]]:
    """{dotted module name: (source file, whether it is a package's __init__)} of every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str, path: Path, is_package: bool, modules: set[str]) -> set[str]:
    """The package's modules that module ``name`` imports anywhere in its source."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit_one(other)
                continue
            visit_one(child)

    def visit_one(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                # ``from . import x`` imports the module x when there is one, else a name of the package itself.
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in modules or submodule in EXTENSIONS else source)
        visit(node)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return {target for target in found if target in modules and target != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as the list of its modules (the first one repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = walk(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = walk(node)
            if cycle:
                return cycle
    return None


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, is_package, set(modules)) for name, (path, is_package) in modules.items()}


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 20 and "safestructures._api" in graph["safestructures"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checker_sees_imports_inside_functions_and_finds_cycles(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import c\n"
                      "def f():\n    from .b import g\n    import safestructures.d\n", encoding="utf-8")
    modules = {"safestructures.m", "safestructures.b", "safestructures.c", "safestructures.d"}
    assert imports_of("safestructures.m", module, False, modules) == {"safestructures.b", "safestructures.d"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_options_and_limits_are_at_the_bottom() -> None:
    # The file's names, the limits and the errors import nothing of the package but one another (and the extension).
    bottom = {"safestructures._format", "safestructures._limits", "safestructures._errors", "safestructures._records"}
    graph = import_graph()
    for name in bottom:
        assert graph[name] <= bottom, f"{name} imports {sorted(graph[name] - bottom)}"
