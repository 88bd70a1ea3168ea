"""Library versions recorded with every result."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

_LIBRARIES = ("attnlab", "torch", "numpy", "scipy", "pandas", "pyarrow", "pydantic", "matplotlib")


def library_versions() -> dict[str, str]:
    """Versions of Python, the platform and the libraries a result depends on."""
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
