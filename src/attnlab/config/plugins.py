"""Extensions from outside the package: modules that define models, data generators, recorders or
claim kinds, imported by name.

A plugin module registers what it defines as it is imported: a ModelSection or DataSection
subclass joins RunConfig (schema.register_section), a Model subclass that sets `config_class` joins
the models, a builder decorated with `attnlab.data.generates` the data generators,
`attnlab.train.recorders.register` adds a recorder, and a subclass of
`attnlab.experiments.claims.ClaimBase` a kind of claim (experiment files naming the plugin take it).
A plugin is named

- by an installed distribution, in the entry-point group `attnlab.plugins` (loaded on first use),
- in an experiment or sweep file (`plugins: [my_models]`),
- on the command line (`attnlab --plugin my_models train ...`),
- in Python (`load_plugins(["my_models"])`, or a plain import).

Sweep workers import the plugins their driver loaded (loaded_plugins); a plugin module must be
importable there too (on sys.path, e.g. through PYTHONPATH).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from typing import Annotated

from pydantic import AfterValidator

from attnlab.config.errors import ConfigError

ENTRY_POINT_GROUP = "attnlab.plugins"
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_loaded: dict[str, None] = {}
_entry_points_loaded = False

def load_plugins(modules: list[str], where: str = "plugin") -> None:
    """Import each module of `modules` (dotted names) once; ConfigError naming `where` (the field or
    option that named it), the module and the reason when one cannot be imported."""
    for name in modules:
        problem = _import(name)
        if problem is not None:
            named = f"{where} {name!r}" if where.startswith("--") else f"{where} = {name!r}"
            raise ConfigError(f"{named}: {problem}")


def _import(name: str) -> str | None:
    """Import the plugin module `name` (once); None, or why it cannot be imported."""
    if not isinstance(name, str) or not _MODULE_NAME.fullmatch(name):
        return "expected the name of a Python module, e.g. my_models"
    if name in _loaded:
        return None
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is not None and (name == error.name or name.startswith(error.name + ".")):
            return "no such module (a plugin must be importable: put its folder on PYTHONPATH or install it)"
        return f"importing it failed: {error}"
    except Exception as error:   # the plugin's own error, e.g. a section name already taken
        return f"importing it failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    _loaded[name] = None
    return None


def loaded_plugins() -> tuple[str, ...]:
    """The plugin modules this process loaded (by load_plugins), in order: what sweep workers load."""
    return tuple(_loaded)


def load_entry_points() -> None:
    """Import the plugins of installed distributions (entry-point group ENTRY_POINT_GROUP), once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        load_plugins([entry.module], where=f"entry point {entry.name!r} ({ENTRY_POINT_GROUP})")


def _plugin(name: str) -> str:
    problem = _import(name)
    if problem is not None:
        raise ValueError(problem)
    return name


Plugins = list[Annotated[str, AfterValidator(_plugin)]]
"""The `plugins` field of experiment and sweep files: module names, imported as the field is
validated (fields validated before it, in declaration order, cannot use what they define)."""
