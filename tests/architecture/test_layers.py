"""The layers of attnlab point one way: a module imports only from its own layer and those below
(docs/architecture.md). Every import is read from the source, including imports inside functions."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import attnlab

# Bottom to top. A module belongs to the first entry that is its name or a package above it.
LAYERS = [
    ("attnlab", "attnlab.config", "attnlab.seeding", "attnlab.versions", "attnlab.numerics", "attnlab.recorder"),
    ("attnlab.store",),
    ("attnlab.models",),
    ("attnlab.data",),
    ("attnlab.ntk",),
    ("attnlab.train",),
    ("attnlab.theory",),
    ("attnlab.sweep",),
    ("attnlab.run",),
    ("attnlab.report",),
    ("attnlab.experiments",),
    ("attnlab.cli",),
]
SOURCE = Path(attnlab.__file__).parent


def layer_of(module: str) -> int:
    """Index in LAYERS of `module` (the deepest matching name wins: attnlab.config before attnlab)."""
    matches = [(len(name), i) for i, names in enumerate(LAYERS) for name in names
               if module == name or module.startswith(name + ".")]
    assert matches, f"{module} belongs to no layer: add it to LAYERS and docs/architecture.md"
    return max(matches)[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported attnlab module) of every import statement in the file."""
    found = []
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append((node.lineno, base))
    return [(line, name) for line, name in found if name == "attnlab" or name.startswith("attnlab.")]


def upward_imports() -> list[str]:
    problems = []
    for path in sorted(SOURCE.rglob("*.py")):
        module = module_name(path)
        own = layer_of(module)
        for line, imported in imports(path):
            if imported != "attnlab" and layer_of(imported) > own:
                problems.append(f"{path.relative_to(SOURCE.parent)}:{line}: {module} (layer {own}) imports "
                                f"{imported} (layer {layer_of(imported)})")
    return problems


def test_no_module_imports_a_layer_above_its_own():
    assert upward_imports() == []


def test_the_ground_floor_imports_no_other_attnlab_module():
    floor = [SOURCE / "recorder.py", *sorted((SOURCE / "numerics").rglob("*.py"))]
    assert [f"{path.relative_to(SOURCE.parent)}:{line}: {name}" for path in floor for line, name in imports(path)] == []


def test_ntk_and_theory_take_no_helper_from_train():
    paths = sorted([*(SOURCE / "ntk").rglob("*.py"), *(SOURCE / "theory").rglob("*.py")])
    assert [f"{path.relative_to(SOURCE.parent)}:{line}: {name}" for path in paths for line, name in imports(path)
            if name == "attnlab.train" or name.startswith("attnlab.train.")] == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    package = tmp_path / "attnlab"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models" / "__init__.py").write_text("")
    (package / "models" / "bad.py").write_text("def f():\n    from attnlab.run import setup\n")
    monkeypatch.setattr(sys.modules[__name__], "SOURCE", package)
    assert upward_imports() == ["attnlab/models/bad.py:2: attnlab.models.bad (layer 2) imports attnlab.run (layer 8)"]
