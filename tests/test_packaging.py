"""An installed (non-editable) attnlab has every file it reads: the GPU machine installs it with pip."""

import fnmatch
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")   # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]


def test_every_data_file_of_the_package_is_declared_package_data():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    source = ROOT / "src"
    missing = []
    for path in (source / "attnlab").rglob("*"):
        if not path.is_file() or path.suffix in (".py", ".pyc"):
            continue
        package = ".".join(path.parent.relative_to(source).parts)
        if not any(fnmatch.fnmatch(path.name, pattern) for pattern in declared.get(package, [])):
            missing.append(str(path.relative_to(source)))
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
