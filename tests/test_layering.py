"""The package's layers, read from its import statements: who may import whom, and who may print.

    errors, energy, text < workspace, shared_meter < evaluation, lm < store < pipeline < search < review, testing < bench < cli

A package imports only from layers below its own (imports under `if TYPE_CHECKING:` are type hints, not
dependencies); only cli/ (and the benchmark programs in bench/) print or import rich or click; and no two modules import each other at load time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import autoresearch

PACKAGE = Path(autoresearch.__file__).resolve().parent
RANK = {"errors": 0, "energy": 0, "text": 0, "shared_meter": 1, "workspace": 1, "evaluation": 2, "lm": 2, "store": 3, "pipeline": 4,
        "search": 5, "review": 6, "bench": 7, "testing": 6, "cli": 8, "__main__": 9, "": 9}
PRINTERS = {"cli", "__main__", "bench"}  # bench/: the programs behind scripts/bench_*.py


def module_name(path: Path) -> str:
    parts = ["autoresearch", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py") if "starter" not in p.parts}


def area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return inside


def imports(module: str) -> list[tuple[str, bool]]:
    """(imported module, at load time) for each import of a module; type-checking imports left out."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    hints = _type_checking_nodes(tree)
    top = {id(n) for n in tree.body} | {id(n) for s in tree.body if isinstance(s, ast.If | ast.Try)
                                         for n in ast.walk(s)}
    found = []
    for node in ast.walk(tree):
        if id(node) in hints:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from . import x` imports the module x when there is one
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in MODULES else target, id(node) in top))
    return found


def test_every_package_imports_only_from_layers_below():
    wrong = []
    for module in MODULES:
        for target, _ in imports(module):
            if not target.startswith("autoresearch.") or area(target) == area(module):
                continue
            if RANK[area(target)] >= RANK[area(module)]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_only_the_cli_prints():
    printers = [f"{module} imports {target}" for module in MODULES for target, _ in imports(module)
                if target.split(".")[0] in ("rich", "click") and area(module) not in PRINTERS]
    assert not printers, "\n".join(printers)
    calls = [f"{module}:{node.lineno}" for module, path in MODULES.items() if area(module) not in PRINTERS
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
             and not path.name == "llama_build.py"]  # run as a script by setup.sh, before install
    assert not calls, "\n".join(calls)


def test_no_import_cycle_at_load_time():
    graph = {m: {t for t, at_load in imports(m) if at_load and t in MODULES and t != m} for m in MODULES}
    for module in graph:  # a package's __init__ runs before its modules: an edge to it is not a cycle
        graph[module] = {t for t in graph[module] if not module.startswith(t + ".")}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack = stack + [node]
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:  # on the stack: a cycle
                cycles.append(" → ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert not cycles, "\n".join(cycles)


def test_the_public_api_is_importable_from_the_package():
    import importlib
    import subprocess
    import sys

    for name in autoresearch.__all__:
        assert getattr(autoresearch, name) is not None, name
    assert autoresearch.errors is importlib.import_module("autoresearch.errors")
    # Loaded on first use: importing the package alone pulls in neither DSPy nor Optuna.
    code = "import autoresearch, sys; print(sorted(m for m in ('dspy', 'optuna') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
