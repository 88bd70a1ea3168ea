"""Loading configs: validation of a mapping (parse_config), YAML files read by a guarded safe loader,
dotted overrides, and flattening to dotted keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from attnlab.config.errors import ConfigError, describe_validation_error
from attnlab.config.plugins import load_entry_points
from attnlab.config.schema import RunConfig


def parse_config(raw: dict[str, Any]) -> RunConfig:
    """Validate a nested dict into a :class:`RunConfig`, raising :class:`ConfigError`."""
    load_entry_points()
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML config file, apply dotted overrides (`{"model.m": 64}`) and validate."""
    path = Path(path)
    raw = read_yaml(path, "config file")
    if raw is None:
        raise ConfigError(f"config file {str(path)!r} is empty: give the fields to set, or leave out "
                          "--config to run the defaults")
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping, not {type(raw).__name__}")
    return parse_config(apply_overrides(raw, overrides or {}))


def read_yaml(path: Path, kind: str) -> Any:
    """The parsed YAML of `path` (None when empty); a ConfigError naming the `kind` of file when it
    cannot be read or parsed (no tag is ever executed, see parse_yaml)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read {kind} {str(path)!r}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{kind} {str(path)!r} is not UTF-8 text (byte {error.start}): "
                          "give a YAML file") from None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{kind} {str(path)!r} is not valid YAML: {yaml_error_line(error)}") from None


YAML_MAX_DEPTH = 100         # nesting of lists and mappings
YAML_MAX_NODES = 1_000_000   # values once every alias is expanded (an alias bomb has 10^9)


class _Loader(yaml.SafeLoader):
    """The safe loader (plain YAML only: a tag is refused, never executed) that also refuses a
    mapping with a key twice, nesting deeper than YAML_MAX_DEPTH and aliases that expand to more
    than YAML_MAX_NODES values (or into themselves), before anything is built."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.sizes: dict[int, int] = {}   # id(node) -> its values with aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        alias = self.check_event(yaml.AliasEvent)
        mark = self.peek_event().start_mark
        self.depth += 1
        try:
            if self.depth > YAML_MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {YAML_MAX_DEPTH} levels", mark)
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        if alias and id(node) not in self.sizes:
            raise yaml.composer.ComposerError(None, None, "an alias refers to its own anchor (recursive alias)", mark)
        if not alias:
            children = (node.value if isinstance(node, yaml.SequenceNode) else
                        [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else [])
            self.sizes[id(node)] = 1 + sum(self.sizes[id(child)] for child in children)
            if self.sizes[id(node)] > YAML_MAX_NODES:
                raise yaml.composer.ComposerError(None, None, f"the aliases expand to more than {YAML_MAX_NODES} "
                                                  "values (an alias bomb?)", mark)
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if (key.tag, key.value) in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"the key {key.value!r} is given twice",
                                                            key.start_mark)
                seen.add((key.tag, key.value))
        return super().construct_mapping(node, deep)


def parse_yaml(text: str) -> Any:
    """The data of YAML `text` (None when empty), read by the guarded safe loader (_Loader):
    yaml.YAMLError for invalid, repeated-key, too deep or alias-bomb input."""
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def yaml_error_line(error: yaml.YAMLError) -> str:
    """A YAML error in one line: what is wrong and where (line, column), e.g. a tab or a tag
    (only plain YAML is read: a `!!python/...` tag is refused, never executed)."""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}".replace("\n", " ")


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `raw` with each dotted key (`"train.radius.w"`) set to its value. Shallower
    keys go first, so a whole section (`model=indrnn`) is set before the fields given inside it
    (`model.m=8`), whatever order they came in."""
    result = _deep_copy(raw)
    for dotted, value in sorted(overrides.items(), key=lambda item: item[0].count(".")):
        node = result
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.get(part)
            if isinstance(child, str):  # name shorthand, e.g. model: kernel-transformer
                child = {"name": child}
            node[part] = child if isinstance(child, dict) else {}
            node = node[part]
        node[leaf] = value
    return result


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def flatten(tree: dict[str, Any], prefix: str = "", keep_empty: bool = False) -> dict[str, Any]:
    """Nested mappings to one level with dotted keys: {"model": {"m": 4}} -> {"model.m": 4}; every
    value that is not a mapping (lists included) is kept as it is, and an empty mapping too when
    `keep_empty` (as an override, {} clears a mapping)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and (value or not keep_empty):
            flat.update(flatten(value, f"{prefix}{key}.", keep_empty))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
