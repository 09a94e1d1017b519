"""The package's structure: no import cycles, no private names across packages, every module
importable on its own in a fresh interpreter."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

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


#: Third-party packages imported once, before the children fork (top-level packages only:
#: their own __init__ decides what else loads, so a perfkit module that uses a submodule it
#: never imports - ``scipy.stats`` after a bare ``import scipy`` - still fails in its child).
_PREWARM = ("numpy", "pandas", "sqlalchemy", "yaml", "numba", "altair", "jsonschema")

_FORK_SERVER = r"""
import importlib, json, os, sys, traceback
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
assert not any(m == "perfkit" or m.startswith("perfkit.") for m in sys.modules), "perfkit imported before forking"
modules = json.loads(sys.stdin.read())
running, results = {}, {}

def reap():
    pid, status = os.wait()
    module, path = running.pop(pid)
    err = open(path).read() if os.path.exists(path) else ""
    results[module] = (os.waitstatus_to_exitcode(status), err[-2000:])

for i, module in enumerate(modules):
    if len(running) >= 2:
        reap()
    path = os.path.join(os.environ["PERFKIT_STRUCTURE_TMP"], f"{i}.err")
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            importlib.import_module(module)
        except BaseException:
            with open(path, "w") as fh:
                fh.write(traceback.format_exc())
            code = 1
        os._exit(code)
    running[pid] = (module, path)
while running:
    reap()
print(json.dumps(results))
"""


def test_every_module_imports_alone_in_a_fresh_interpreter(tmp_path):
    """Each perfkit module is imported by a child of one interpreter that has imported only
    third-party packages (a fresh ``python -c 'import m'`` per module took 117 s): no other
    perfkit module is loaded before it, so it must import everything it needs itself."""
    import json
    import os

    env = {**os.environ, "PERFKIT_STRUCTURE_TMP": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", _FORK_SERVER, *_PREWARM], input=json.dumps(sorted(MODULES)),
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(results) == sorted(MODULES)
    failed = [f"{m}: {err}" for m, (rc, err) in sorted(results.items()) if rc != 0]
    assert not failed, "\n".join(failed)


def test_the_import_check_catches_a_module_that_needs_another_first(tmp_path):
    """The forked check fails a module whose import works only after another perfkit module."""
    import json
    import os
    import shutil

    pkg = tmp_path / "pkgroot" / "fakepk"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import fakepk.b\nVALUE = fakepk.b.VALUE\n")
    (pkg / "b.py").write_text("VALUE = 1\n")
    (pkg / "c.py").write_text("import fakepk\nVALUE = fakepk.a.VALUE  # works only if fakepk.a was imported\n")
    env = {**os.environ, "PERFKIT_STRUCTURE_TMP": str(tmp_path),
           "PYTHONPATH": str(tmp_path / "pkgroot") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", _FORK_SERVER], input=json.dumps(["fakepk.a", "fakepk.b", "fakepk.c"]),
                          capture_output=True, text=True, timeout=300, env=env)
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results["fakepk.a"][0] == 0 and results["fakepk.b"][0] == 0
    assert results["fakepk.c"][0] == 1 and "AttributeError" in results["fakepk.c"][1]
    shutil.rmtree(pkg)
