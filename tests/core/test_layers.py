"""The layer contract holds and no module imports itself back, even through others.

``[tool.importlinter]`` in pyproject.toml states the layers (core <- features <- public API <-
channels and plugins <- app/CLI), "graphs never import connectors" and "built-in plugins use
only the public API"; ``lint-imports`` checks them here as it would in CI. The cycle checks
below are stronger than the contract's ``acyclic_siblings`` (which stops listing after five):
every cycle between two modules, and between two sibling packages, is listed with the import
lines that close it. The graph counts every import statement, including those inside
functions and under ``if TYPE_CHECKING:`` (a lazy or type-only import is still a dependency),
plus ``__import__("bot.x")`` / ``importlib.import_module("bot.x")`` with a literal name, which
import-linter does not see.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTAINER = "opencomputer"
"""The one package; the repository's bot/, connectors/, graphs/, plugins/ are its subpackages
(``opencomputer/bot`` links to ``../bot``), so every module name starts with it."""
# Programs a tool runs from their file, which no module imports: their imports make no package
# depend on another (alembic's env.py loads the settings only when the alembic command runs it).
SCRIPTS = {"opencomputer.bot.storage.migrations.env"}

Edges = dict[str, set[str]]


def _sources() -> Iterator[Path]:
    """Every module file of the package, through its links to the top-level folders."""
    for folder, dirs, files in os.walk(ROOT / CONTAINER, followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        yield from (Path(folder) / f for f in files if f.endswith(".py"))


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _literal_imports(path: Path) -> Iterator[tuple[str, int, str]]:
    """``__import__("m")`` and ``importlib.import_module("m")`` of our own modules."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source, str(path))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        arg = node.args[0]
        if name in ("__import__", "import_module") and isinstance(arg, ast.Constant):
            target = arg.value
            if isinstance(target, str) and target.split(".")[0] == CONTAINER:
                yield target, node.lineno, lines[node.lineno - 1].strip()


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    built = grimp.build_graph(CONTAINER, cache_dir=None)
    for path in _sources():
        importer = _module_of(path)
        for target, line, text in _literal_imports(path):
            if target in built.modules:
                built.add_import(
                    importer=importer, imported=target, line_number=line, line_contents=text
                )
    assert f"{CONTAINER}.bot.runtime" in built.modules  # the links were followed
    return built


def _components(edges: Edges) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (layers,) = [
        c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"
    ]
    return list(layers)


def _names(layer: str) -> list[str]:
    """Full module names of a layer (the contract names them inside the container)."""
    parts = layer.replace("|", ":").split(":")
    return [f"{CONTAINER}.{name.strip().strip('()')}" for name in parts]


def _layer_of(module: str) -> int | None:
    """Index in the contract's layers (0 is the top) of the entry holding ``module``."""
    best: tuple[int, int] | None = None
    for number, layer in enumerate(_layers()):
        for name in _names(layer):
            if (module == name or module.startswith(name + ".")) and (
                best is None or len(name) > best[1]
            ):
                best = (number, len(name))
    return None if best is None else best[0]


def _lines(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    found = "; ".join(f"l.{d['line_number']} {d['line_contents']}" for d in details)
    low, high = _layer_of(importer), _layer_of(imported)
    up = low is not None and high is not None and high < low
    return found + ("   <-- imports a higher layer" if up else "")


def _report(graph: grimp.ImportGraph, cycles: Iterable[tuple[str, list[tuple[str, str]]]]) -> str:
    out = []
    for title, imports in cycles:
        out.append(title)
        out.extend(f"    {a} -> {b}: {_lines(graph, a, b)}" for a, b in imports)
    return "\n".join(out)


def test_layer_contract_is_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    text = done.stdout + done.stderr
    broken = text[text.find("Broken contracts") :] if "Broken contracts" in text else text
    assert done.returncode == 0, f"lint-imports (pyproject [tool.importlinter]):\n{broken}"


def test_no_module_imports_itself_back(graph: grimp.ImportGraph) -> None:
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    for script in SCRIPTS:
        edges[script] = set()
    cycles = []
    for component in _components(edges):
        members = set(component)
        inside = [(a, b) for a in component for b in sorted(edges[a] & members)]
        cycles.append((f"cycle: {' <-> '.join(component)}", inside))
    assert not cycles, "modules in an import cycle:\n" + _report(graph, cycles)


def test_no_two_sibling_packages_import_each_other(graph: grimp.ImportGraph) -> None:
    # the container's own children are ordered by the layers (the graph below the runtime)
    packages = sorted(m for m in graph.modules if graph.find_children(m) and m != CONTAINER)
    cycles = []
    for package in packages:
        depth = package.count(".") + 1
        children = graph.find_children(package)

        def sibling(module: str, package: str = package, depth: int = depth) -> str | None:
            if not module.startswith(package + "."):
                return None
            return ".".join(module.split(".")[: depth + 1])

        edges: Edges = defaultdict(set)
        examples: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
        for child in children:
            for module in [child, *graph.find_descendants(child)]:
                if module in SCRIPTS:
                    continue
                for imported in graph.find_modules_directly_imported_by(module):
                    target = sibling(imported)
                    if target is not None and target != child:
                        edges[child].add(target)
                        examples[(child, target)].append((module, imported))
        for component in _components(edges):
            # module-level cycles are reported by the test above; here only package ones
            if all(not graph.find_children(m) for m in component):
                continue
            members = set(component)
            inside = [
                pair
                for a in component
                for b in sorted(edges[a] & members)
                for pair in sorted(examples[(a, b)])
            ]
            cycles.append((f"in {package}: {' <-> '.join(component)}", inside))
    assert not cycles, "sibling packages depending on each other:\n" + _report(graph, cycles)


def test_every_module_is_in_a_layer(graph: grimp.ImportGraph) -> None:
    placed = {name for layer in _layers() for name in _names(layer)}
    bot = f"{CONTAINER}.bot"
    candidates = [c for c in graph.find_children(CONTAINER) if c != bot]
    candidates += graph.find_children(bot)  # bot/ is placed module by module
    missing = sorted(c for c in candidates if c not in placed)
    assert not missing, (
        "modules in no layer of pyproject [tool.importlinter] (add each to one): "
        + ", ".join(missing)
    )


def test_nothing_imports_the_folders_as_top_level_packages() -> None:
    """In a checkout ``bot`` is importable as a top-level name too (the working folder is on
    ``sys.path``): an import of it would load a second copy of every module (two ``Message``
    classes, two settings). Installed, the name does not exist at all; so every import goes
    through ``opencomputer``.
    """
    stray = re.compile(r"^\s*(?:from|import)\s+(?:bot|connectors|graphs|plugins)\b", re.M)
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found = [
        f"{name}:{text.count(chr(10), 0, match.start()) + 1}"
        for name in tracked
        if not (ROOT / name).is_symlink()
        for text in [(ROOT / name).read_text(encoding="utf-8")]
        for match in stray.finditer(text)
    ]
    assert not found, "import opencomputer.<folder> instead: " + ", ".join(found)
