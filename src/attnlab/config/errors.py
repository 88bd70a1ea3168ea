"""The one wording of configuration errors: `field = value: what is allowed`."""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from attnlab.config.schema import SECTIONS, RunConfig


class ConfigError(ValueError):
    """An invalid configuration; the message is one line naming field, value and what is allowed."""


def describe_validation_error(error: ValidationError, root: type[BaseModel] | None = RunConfig,
                              name: str | None = "config", wording: dict[str, str] | None = None) -> str:
    """The one wording of validation errors: `field = value: what is allowed` for each problem,
    joined by '; ' (duplicates once), for every validated thing (run configs, sweeps, experiment
    files, command-line options).

    root: the model validated (lists the allowed fields of an unknown one); name: what a problem of
    the whole input is called (None: its message alone, e.g. a check across fields); wording: a
    message per pydantic error type (e.g. "too_short"). A name spelled as an option ("--executor")
    reads the command-line way, `--executor 'spark': expected local, dask or slurm`.
    """
    lines = []
    for item in error.errors():
        loc = [str(p) for p in item["loc"] if not _is_union_branch(p)]
        field = ".".join(loc) or name
        message, value = item["msg"].removeprefix("Value error, "), item["input"]
        if item["type"] in (wording or {}):
            message = wording[item["type"]]
        elif not loc and item["type"] == "value_error" and root is not None:
            field = None   # a check across fields: its message names them
        elif item["type"] == "extra_forbidden" and root is not None:
            message = f"unknown field (allowed: {', '.join(_section_at(root, item['loc'][:-1]).model_fields)})"
        elif item["type"] in ("union_tag_invalid", "union_tag_not_found"):
            field, value = f"{field}.name", value.get("name") if isinstance(value, dict) else value
            message = f"allowed: {', '.join(_tagged_sections(loc[0]))}"
        if field is None:
            lines.append(message)
        elif field.startswith("--"):
            if item["type"] == "literal_error":
                message = f"expected {item['ctx']['expected']}".replace("'", "")
            lines.append(f"{field} {value!r}: {message}")
        else:
            lines.append(f"{field} = {value!r}: {message}")
    return "; ".join(dict.fromkeys(lines))


def _tagged_sections(section: str | None = None) -> dict[str, type[BaseModel]]:
    """Config classes of the model and data sections (or of one `section`) by their `name` tag,
    plugins' included."""
    kinds = [section] if section in SECTIONS else list(SECTIONS)
    return {name: cls for kind in kinds for name, cls in SECTIONS[kind].items()}


def _is_union_branch(part: Any) -> bool:
    """Pydantic puts the branch of a union in error locations ('kernel-transformer', 'float', ...)."""
    if not isinstance(part, str):
        return False
    return (part in _tagged_sections() or part in {"float", "int", "str", "bool"} or "[" in part
            or part.startswith(("constrained-", "function-")))


def _section_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel]:
    """The model class at error location `loc` under `root` (through unions, lists and mappings)."""
    section, tagged = root, _tagged_sections()
    for part in loc:
        if part in tagged:
            section = tagged[part]
            continue
        info = section.model_fields.get(part) if isinstance(part, str) else None
        inner = models_in(info.annotation) if info else []
        section = inner[0] if inner else section   # a key, an index or a union branch: stay
    return section


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The config classes an annotation holds: itself, the members of a union, list or dict items."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [cls for arg in get_args(annotation) for cls in models_in(arg)]


