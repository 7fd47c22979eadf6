"""The package's imports run one way (no circle, no upward import, no private name across
modules), and docs/architecture.md lists its files.

The layers, lowest first, are :data:`LAYERS` (docs/architecture.md draws them). A module may
import from its own layer and the ones below it; every import counts, including those inside
functions (a lazy import still ties the two modules together). The checks read the source
with :mod:`ast`; each has a test on a constructed graph that it must fail.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]

#: Layers, lowest first: the module-name prefixes of each.
LAYERS = (
    ("pvae.validation", "pvae.layout", "pvae.version", "pvae.startup"),
    ("pvae.display", "pvae.files", "pvae.tables", "pvae.tasks"),
    ("pvae.distributions", "pvae.networks"),
    ("pvae.contract", "pvae.finite"),
    ("pvae.likelihoods", "pvae.models", "pvae.guides"),
    ("pvae.registry",),
    ("pvae.estimation", "pvae.imputation"),
    ("pvae.theory",),
    ("pvae.training",),
    ("pvae.diagnostics",),
    ("pvae.data",),
    ("pvae.plots",),
    ("pvae.checkpoint",),
    ("pvae.experiments",),
    ("pvae.cli",),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] in ("models", "guides"):  # installed as pvae.models, pvae.guides
        parts.insert(0, "pvae")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    files = [*ROOT.glob("pvae/**/*.py"), *ROOT.glob("models/*.py"), *ROOT.glob("guides/*.py")]
    return {module_name(path): path for path in files}


def imports_of(path: Path, modules: dict[str, Path]) -> list[tuple[str, str]]:
    """``(module, name)`` for every ``from pvae... import name`` and ``import pvae...`` in the
    file, wherever it stands; ``module`` is the imported name itself where that is a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pvae"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in modules:
                    found.append((submodule, ""))
                else:
                    found.append((node.module, alias.name))
        elif isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.startswith("pvae")]
    return found


def layer(module: str) -> int:
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    if module == "pvae":
        return len(LAYERS)  # the public face re-exports from every layer
    raise AssertionError(f"module {module!r} is in no layer of tests/test_architecture.py")


def edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the package modules it imports (a package's ``__init__`` imports the
    submodules it re-exports, so importing the package depends on all of them)."""
    return {
        module: {target for target, _ in imports_of(path, modules)} - {module}
        for module, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (a list of modules, the first repeated last), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{source} (layer {layer(source)}) imports {target} (layer {layer(target)})"
        for source, targets in graph.items()
        for target in targets
        if layer(target) > layer(source)
    )


def private_imports(modules: dict[str, Path]) -> list[str]:
    return sorted(
        f"{source} imports {name!r} from {target}"
        for source, path in modules.items()
        for target, name in imports_of(path, modules)
        if name.startswith("_") and not name.startswith("__") and target != source
    )


MODULES = package_modules()
GRAPH = edges(MODULES)


def test_every_module_has_a_layer():
    for module in MODULES:
        layer(module)


def test_no_import_circle():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH))


def test_no_upward_import():
    assert upward_imports(GRAPH) == []


def test_no_private_name_is_imported_across_modules():
    assert private_imports(MODULES) == []


def test_pyproject_installs_every_package():
    """A package missing from the explicit list is left out of a wheel (an editable install
    would still find it, so nothing else notices)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {module for module, path in MODULES.items() if path.name == "__init__.py"}
    assert set(config["packages"]) == packages


def test_every_module_opens_with_a_docstring_and_all():
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        assert ast.get_docstring(tree), f"{module} has no module docstring"
        names = {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        if path.name != "__main__.py":
            assert "__all__" in names, f"{module} has no __all__"


def documented_files(text: str) -> set[str]:
    """The files of the first code block of docs/architecture.md, a tree indented by two
    spaces a level, folders ending in ``/``."""
    block = text.split("```\n", 2)[1]
    folders: list[str] = []
    files = set()
    for line in block.splitlines():
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name = line.split()[0]
        del folders[depth:]
        if name.endswith("/"):
            folders.append(name)
        else:
            files.add("".join(folders) + name)
    return files


def test_the_architecture_doc_lists_exactly_the_package_files():
    documented = documented_files((ROOT / "docs" / "architecture.md").read_text())
    actual = {str(path.relative_to(ROOT)) for path in MODULES.values()}
    assert documented == actual


def test_the_architecture_doc_draws_these_layers():
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    drawn = {
        int(cells[0]): tuple(f"pvae.{name.strip(' `')}" for name in cells[1].split(","))
        for cells in (row.strip("| ").split(" | ") for row in rows)
    }
    assert drawn == dict(enumerate(LAYERS))


# The checks themselves, on constructed cases: each must find what it is for.


def test_the_doc_tree_is_read_by_indentation():
    tree = "```\na/\n  b.py   one\n  c/\n    d.py  two\n  e.py\nf/\n  g.py\n```\n"
    assert documented_files(tree) == {"a/b.py", "a/c/d.py", "a/e.py", "f/g.py"}


def test_the_cycle_check_finds_a_circle():
    graph = {"pvae.a": {"pvae.b"}, "pvae.b": {"pvae.c"}, "pvae.c": {"pvae.a"}, "pvae.d": set()}
    assert find_cycle(graph) == ["pvae.a", "pvae.b", "pvae.c", "pvae.a"]
    assert find_cycle({"pvae.a": {"pvae.b"}, "pvae.b": set()}) is None


def test_the_layer_check_finds_an_upward_import():
    graph = {"pvae.estimation.passes": {"pvae.training.fit", "pvae.contract"}}
    (found,) = upward_imports(graph)
    assert found.startswith("pvae.estimation.passes (layer 6) imports pvae.training.fit")


def test_the_private_check_finds_a_private_import(tmp_path, monkeypatch):
    source = tmp_path / "m.py"
    source.write_text(
        "def f():\n    from pvae.estimation.passes import _plan, iter_log_weights\n"
        "from pvae.estimation import passes\n"
    )
    modules = {"pvae.estimation.passes": ROOT / "pvae/estimation/passes.py", "pvae.m": source}
    assert private_imports(modules) == ["pvae.m imports '_plan' from pvae.estimation.passes"]
    assert ("pvae.estimation.passes", "") in imports_of(source, modules)


@pytest.mark.parametrize("name", ["pvae.nowhere", "pvae.estimation_extra"])
def test_a_module_outside_the_layers_is_named(name):
    with pytest.raises(AssertionError, match="in no layer"):
        layer(name)
