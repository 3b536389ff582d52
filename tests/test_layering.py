"""The package's layers import downward only, with no import cycle.

Every ``import`` / ``from ... import`` statement of every module is read with :mod:`ast` —
module level and inside functions alike — and ``importlib.import_module("tfderain...")`` calls
with a literal name. Each module must sit in a layer of :data:`LAYERS` (a new module must be
placed there), may import modules of its own layer or of lower layers only, and the whole graph
must be acyclic. This is the order of ``../shared/DESIGN.md``:
``_keras → io, metrics, losses, schedules → models → saving, convert → data → inference,
evaluation, presets → callbacks, distribute, training, export, beam → api → cli``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tfderain"

#: Layer of each module or subpackage (a subpackage's modules share its layer), lowest first.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_keras", "_version", "_quiet", "_lazy", "_machine"),
    (
        "io",
        "metadata",
        "metrics",
        "losses",
        "schedules",
        "pth",
        "processing",
        "density",
        "tiling",
        "_args",
    ),
    ("models",),
    ("saving", "convert"),
    ("data",),
    ("inference", "video", "evaluation", "presets", "density_estimation"),
    ("callbacks", "distribute", "training", "export", "beam"),
    ("api",),
    ("cli", "train_cli", "__main__"),
    ("",),  # the root package: public names only, loaded lazily
)


def module_names() -> dict[str, Path]:
    """``{"tfderain.x.y": path}`` of every module of the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def layer_of(module: str) -> int:
    """Index into :data:`LAYERS` of ``module`` (``tfderain.data.pipeline`` → ``data``'s)."""
    relative = module.split(".")[1:]
    head = relative[0] if relative else ""
    for index, names in enumerate(LAYERS):
        if head in names:
            return index
    raise LookupError(f"{module} is not placed in a layer of tests/test_layering.py")


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``module`` imports anywhere in its source."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                child = f"{base}.{alias.name}"
                targets.add(child if child in known else base)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            targets.add(node.args[0].value)
    return {t for t in targets if t in known and t != module}


def import_graph() -> dict[str, set[str]]:
    known = module_names()
    return {name: imports_of(name, path, set(known)) for name, path in known.items()}


def test_every_module_is_placed_in_a_layer():
    unplaced = []
    for name in module_names():
        try:
            layer_of(name)
        except LookupError:
            unplaced.append(name)
    assert not unplaced, f"modules without a layer: {unplaced}"


def test_layers_import_downward_only():
    upward = [
        f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})"
        for name, targets in import_graph().items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(name) and not name.startswith(target + ".")
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    graph = import_graph()
    # A submodule's import of its own package's __init__ is how Python loads it, not a cycle.
    edges = {n: {t for t in ts if not n.startswith(t + ".")} for n, ts in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from tfderain import io, models\n", {"tfderain.io", "tfderain.models"}),
        ("def f():\n    from tfderain.api import load_model\n", {"tfderain.api"}),
        ("from . import blocks\n", {"tfderain.models.blocks"}),
        ("import importlib\nimportlib.import_module('tfderain.cli')\n", {"tfderain.cli"}),
    ],
)
def test_the_reader_sees_every_kind_of_import(tmp_path, source, expected):
    """The checks above would pass vacuously if imports were missed: check the reader itself."""
    path = tmp_path / "prenet.py"
    path.write_text(source)
    known = set(module_names())
    assert imports_of("tfderain.models.prenet", path, known) == expected
