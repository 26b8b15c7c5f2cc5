"""The house rules of `services/`: no package imports a package above it, and no files import each other in
a loop (imports inside functions count too: a lazy import hides a loop, it does not remove it)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[1] / "services"

# Lowest first. A package may import itself and the packages of lower layers, never its own layer's others.
LAYERS = (
    ("tally_core",),                                     # the pure domain: no I/O
    ("tally_infra",),                                    # pool, embedded PostgreSQL, logs, faults, settings
    ("tally_edge", "tally_catalog", "tally_aggregator"),  # HTTP edge; the catalog; usage and its read port
    ("tally_billing",),                                  # reads usage through the aggregator's port
    ("tally_ingest",),
    ("tally_api",),
    ("tally_cli",),
    ("tally_bench",),
)
LAYER = {pkg: i for i, names in enumerate(LAYERS) for pkg in names}
# The one import that goes up, on purpose: `tally bench` loads the bench, which ships in its own extra and
# may be absent (the command then says how to install it).
UPWARD = {("tally_cli.__main__", "tally_bench")}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SERVICES).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every tally module `path` imports, resolved to a module name (from-imports of a name in a package count
    as the package, or as the submodule when there is one)."""
    tree = ast.parse(path.read_text(), str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value)  # importlib.import_module("tally_x"): an import all the same
    return {m for m in found if m.startswith("tally_")}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SERVICES.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_package_imports_a_package_above_it_or_beside_it():
    graph = _graph()
    wrong = []
    for module, targets in sorted(graph.items()):
        mine = module.split(".")[0]
        for target in sorted(targets):
            theirs = target.split(".")[0]
            if theirs != mine and LAYER[theirs] >= LAYER[mine] and (module, theirs) not in UPWARD:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "layering broken:\n" + "\n".join(wrong)


def test_every_package_has_a_layer():
    packages = {p.name for p in SERVICES.iterdir() if (p / "__init__.py").exists()}
    assert packages <= set(LAYER), f"add {sorted(packages - set(LAYER))} to LAYERS"


def test_no_files_import_each_other_in_a_loop():
    graph = _graph()
    # Package __init__ modules are containers: `import a.b` runs a/__init__ first, which is not a loop of files.
    edges = {m: {t for t in ts if not graph.get(t) or not m.startswith(t + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    loops = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                loops.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not loops, "import loops:\n" + "\n".join(" -> ".join(loop) for loop in loops)


def test_the_walker_sees_a_loop_and_an_upward_import(tmp_path, monkeypatch):
    # The rules above are only as good as the walk: a made-up tree with both faults must fail both.
    core, api = tmp_path / "tally_core", tmp_path / "tally_api"
    for pkg in (core, api):
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
    (core / "a.py").write_text("def f():\n    from tally_api.b import g\n")
    (api / "b.py").write_text("from tally_core.a import f\ng = 1\n")
    monkeypatch.setattr(sys.modules[__name__], "SERVICES", tmp_path)
    graph = _graph()
    assert graph["tally_core.a"] == {"tally_api.b"} and "tally_core.a" in graph["tally_api.b"]
    try:
        test_no_package_imports_a_package_above_it_or_beside_it()
    except AssertionError as err:
        assert "tally_core.a imports tally_api.b" in str(err)
    else:
        raise AssertionError("the upward import was not seen")
    try:
        test_no_files_import_each_other_in_a_loop()
    except AssertionError as err:
        assert "tally_api.b -> tally_core.a -> tally_api.b" in str(err)
    else:
        raise AssertionError("the loop was not seen")
