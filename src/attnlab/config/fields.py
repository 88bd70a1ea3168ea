"""What a config field accepts, read off the config classes: the choices, types and help of the
command-line options (attnlab.cli.config_flags)."""

from __future__ import annotations

from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from attnlab.config.errors import models_in
from attnlab.config.schema import RunConfig


@dataclass(frozen=True)
class FieldFacts:
    """What a dotted config field accepts, read off the config classes (across the members of the
    model and data unions that have it): its Literal values, the other types it takes, its help.

    sections: the union members holding it (by name; () outside the unions or in every member);
    choices: the Literal values; kinds: int / float / bool / str where the field takes any such value.
    """

    path: str
    sections: tuple[str, ...]
    choices: tuple[Any, ...]
    kinds: tuple[type, ...]
    help: str


def describe_field(path: str) -> FieldFacts:
    """The facts of RunConfig field `path` ("model.m", "train.radius", "data.name"); KeyError if
    no config class has it. A section (train.radius) takes what its fields take (its shorthand)."""
    *parents, leaf = path.split(".")
    holders: list[type[BaseModel]] = [RunConfig]
    parent_info = None
    for part in parents:
        infos = [cls.model_fields[part] for cls in holders if part in cls.model_fields]
        parent_info = infos[0] if infos else None
        holders = [cls for info in infos for cls in models_in(info.annotation)]
    found = [(cls, cls.model_fields[leaf]) for cls in holders if leaf in cls.model_fields]
    if not found:
        raise KeyError(f"{path}: no config section has this field")
    choices: dict[Any, None] = {}
    kinds: dict[type, None] = {}
    for _, info in found:
        _accepted(info.annotation, choices, kinds)
    tags = [cls.model_fields["name"].default for cls, _ in found if "name" in cls.model_fields]
    if leaf == "name" and parent_info is not None:    # the tag picks the union member: the section's help
        text = parent_info.description or ""
    else:
        described: dict[str, list[str]] = {}
        for (cls, info), tag in zip(found, tags or [""] * len(found)):
            described.setdefault(_description(info), []).append(tag)
        text = (next(iter(described)) if len(described) == 1
                else "; ".join(f"{', '.join(held)}: {d}" for d, held in described.items() if d))
    partial = tuple(tags) if tags and leaf != "name" and len(tags) < len(holders) else ()
    return FieldFacts(path, partial, tuple(choices), tuple(kinds), text)


def _description(info: Any) -> str:
    if info.description:
        return info.description
    models = models_in(info.annotation)
    return (models[0].__doc__ or "").strip().splitlines()[0] if models else ""


def _accepted(annotation: Any, choices: dict[Any, None], kinds: dict[type, None]) -> None:
    """Collect the Literal values and plain kinds an annotation admits (a config section: those of
    its fields)."""
    origin = get_origin(annotation)
    if origin is Literal:
        choices.update(dict.fromkeys(get_args(annotation)))
    elif origin is Annotated:
        _accepted(get_args(annotation)[0], choices, kinds)
    elif origin is Union or origin is UnionType:
        for arg in get_args(annotation):
            _accepted(arg, choices, kinds)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for info in annotation.model_fields.values():
            _accepted(info.annotation, choices, kinds)
    elif annotation in (int, float, bool, str):
        kinds[annotation] = None

