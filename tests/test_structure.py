"""The package's structure: no import cycles, no private names across packages, every module
importable on its own in a fresh interpreter."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import perfkit

ROOT = pathlib.Path(perfkit.__file__).parent


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if "migrations" in parts:
            continue  # Alembic scripts are loaded by Alembic, not imported
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _package(module: str, path: pathlib.Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _top_level_imports(module: str, path: pathlib.Path, *, lazy: bool = False):
    """(imported module, imported names, line) for imports run at import time.

    Imports under ``if TYPE_CHECKING:`` never run. Imports inside functions (lazy imports)
    run later; with ``lazy=True`` they count too: a lazy import that closes a loop is a
    cycle in the design, only hidden from the interpreter.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _package(module, path)

    def walk(nodes):
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and not lazy:
                continue
            if isinstance(node, ast.Import):
                for a in node.names:
                    yield a.name, (), node.lineno
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                yield base, tuple(a.name for a in node.names), node.lineno
            else:
                yield from walk(ast.iter_child_nodes(node))

    yield from walk(tree.body)


def _resolve(target: str, names: tuple[str, ...]) -> list[str]:
    """perfkit modules an import statement loads (``from pkg import mod`` loads ``pkg.mod``)."""
    out = []
    if target in MODULES:
        out.append(target)
    for n in names:
        if f"{target}.{n}" in MODULES:
            out.append(f"{target}.{n}")
    return out


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        deps = set()
        for target, names, _ in _top_level_imports(module, path, lazy=True):
            if target == "perfkit" or target.startswith("perfkit."):
                deps.update(_resolve(target, names))
                # importing a.b.c runs a/__init__ and a/b/__init__ too
                parts = target.split(".")
                deps.update(".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in MODULES)
        deps.discard(module)
        graph[module] = deps
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if m.startswith(d + ".") or d.startswith(m + "."):
                continue  # package <-> its own submodule: Python handles the partial init
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_names_across_packages():
    bad = []
    for module, path in MODULES.items():
        package = _package(module, path)
        for target, names, line in _top_level_imports(module, path):
            if not target.startswith("perfkit"):
                continue
            target_pkg = target if target in MODULES and MODULES[target].name == "__init__.py" else \
                target.rpartition(".")[0]
            same = package == target_pkg or package.startswith(target_pkg + ".") or \
                target_pkg.startswith(package + ".")
            private_module = any(p.startswith("_") and not p.startswith("__") for p in target.split(".")[1:])
            private_names = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if (private_module or private_names) and not same and target_pkg != "perfkit":
                bad.append(f"{module}:{line} imports {target} {private_names or ''}")
        # lazy imports inside functions count too
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("perfkit."):
                target_pkg = node.module.rpartition(".")[0] if node.module not in MODULES or \
                    MODULES[node.module].name != "__init__.py" else node.module
                same = package == target_pkg or package.startswith(target_pkg + ".") or \
                    target_pkg.startswith(package + ".")
                private_names = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private_names and not same and target_pkg != "perfkit":
                    bad.append(f"{module}:{node.lineno} imports {node.module} {private_names}")
    assert not sorted(set(bad)), "private names used across packages:\n" + "\n".join(sorted(set(bad)))


def test_every_module_imports_alone_in_a_fresh_interpreter():
    def run(module: str) -> tuple[str, int, str]:
        proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                              timeout=300)
        return module, proc.returncode, proc.stderr[-2000:]

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, sorted(MODULES)))
    failed = [f"{m}: {err}" for m, rc, err in results if rc != 0]
    assert not failed, "\n".join(failed)
