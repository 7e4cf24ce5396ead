"""The package's layers as a test: no module imports one above it, no two modules import each other
(directly or round a circle), and the lower layers stay free of Ray and torch.

Read from the source with ``ast`` (imports inside functions count too), so a forbidden import
fails here before anyone has to notice it in a picture of the import graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sibcl_ray"

#: Bottom to top; a module may import from its own layer and those below. A new module must be
#: placed here: an unplaced one fails the test.
LAYERS: list[tuple[str, ...]] = [
    ("sibcl_ray.errors", "sibcl_ray.provenance"),
    ("sibcl_ray.physics",),
    ("sibcl_ray.problems", "sibcl_ray.storage", "sibcl_ray.resources", "sibcl_ray.monitoring"),
    ("sibcl_ray.learning", "sibcl_ray.pictures", "sibcl_ray.presets", "sibcl_ray.session", "sibcl_ray.search_spaces"),
    ("sibcl_ray.predictor", "sibcl_ray.cli", "sibcl_ray.data"),
    ("sibcl_ray.train",),
    ("sibcl_ray.search",),
    ("sibcl_ray.benchmark",),
    # the commands, and the package's own front door (``sibcl_ray.load_model``)
    ("sibcl_ray.tune", "sibcl_ray.generate", "sibcl_ray.import", "sibcl_ray.predict", "sibcl_ray.cluster_sim",
     "sibcl_ray.grafana_dashboard", "sibcl_ray.__init__", "sibcl_ray.__main__"),
]
#: Layers that must not import these libraries (docs/model.md: physics and problems are NumPy only;
#: the learning code is pure torch).
NO_IMPORT = {"sibcl_ray.physics": ("ray", "torch"), "sibcl_ray.problems": ("ray", "torch"), "sibcl_ray.learning": ("ray",)}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """The package's modules (and other top-level libraries) that ``path`` imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
                parts = here.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known)
    return found


def layer_of(module: str) -> int:
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    if module == "sibcl_ray":
        return len(LAYERS) - 1
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py: place it there")


def graph() -> dict[str, set[str]]:
    known = modules()
    names = set(known)
    # the bare package (``from sibcl_ray import storage``) runs only its lazy __init__: not an edge
    return {m: {i for i in imports(p, names) if i in names and i not in (m, "sibcl_ray")} for m, p in known.items()}


def test_every_module_has_a_layer_and_imports_only_downwards() -> None:
    upward = [f"{m} (layer {layer_of(m)}) imports {i} (layer {layer_of(i)})"
              for m, targets in graph().items() for i in sorted(targets) if layer_of(i) > layer_of(m)]
    assert not upward, "imports back up:\n" + "\n".join(upward)


def test_no_circles() -> None:
    edges = graph()
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert not circles, "circles: " + "; ".join(" -> ".join(c) for c in circles)


@pytest.mark.parametrize("layer, banned", sorted(NO_IMPORT.items()))
def test_lower_layers_import_neither_ray_nor_torch(layer: str, banned: tuple[str, ...]) -> None:
    known = modules()
    bad = [f"{m} imports {i}" for m, p in known.items() if m == layer or m.startswith(layer + ".")
           for i in sorted(imports(p, set(known))) if i.split(".")[0] in banned]
    assert not bad, bad


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The test itself can fail: an upward import written into a physics-like file is found."""
    probe = PACKAGE / "physics" / "unit_cells.py"
    found = imports(probe, set(modules()))
    assert all(layer_of(i) <= layer_of("sibcl_ray.physics") for i in found if i.startswith("sibcl_ray."))
    fake = tmp_path / "fake.py"
    fake.write_text("def f():\n    from sibcl_ray.search.run import run_search\n    import ray\n")
    assert {"sibcl_ray.search.run", "ray"} <= imports(fake, set(modules()) | {"sibcl_ray.search.run"})
