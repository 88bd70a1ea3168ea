"""Validated run configurations.

A run is fully described by a :class:`RunConfig`: which model, which data, how to train, the seed,
the device and the dtype. Configs are frozen pydantic models that refuse unknown fields; every
default is filled in on load, so the dumped config is the *resolved* config that identifies a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Radius = Union[Annotated[float, Field(ge=0)], Literal["none"]]


class Strict(BaseModel):
    """Base for every config section: unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------- models
class KernelTransformerConfig(Strict):
    """Multi-head kernel-regime Transformer (spec kernel-regime-transformer.md, section 1)."""

    name: Literal["kernel-transformer"] = "kernel-transformer"
    m: PositiveInt = 64
    activation: Literal["tanh", "erf"] = "tanh"
    paired: bool = True

    @model_validator(mode="after")
    def _even_width(self) -> "KernelTransformerConfig":
        if self.paired and self.m % 2:
            raise ValueError(f"m must be even for paired initialisation (got {self.m}); "
                             "use an even width or paired: false")
        return self


class IndRNNConfig(Strict):
    """Diagonal recurrent network of spec recurrent-baseline.md, section 1; `gain` is the recurrent gain g."""

    name: Literal["indrnn"] = "indrnn"
    m: PositiveInt = 64
    activation: Literal["tanh", "erf"] = "tanh"
    gain: PositiveFloat = 1.5
    paired: bool = True

    @model_validator(mode="after")
    def _even_width(self) -> "IndRNNConfig":
        if self.paired and self.m % 2:
            raise ValueError(f"m must be even for paired initialisation (got {self.m}); "
                             "use an even width or paired: false")
        return self


ModelConfig = Annotated[Union[KernelTransformerConfig, IndRNNConfig], Field(discriminator="name")]


# ----------------------------------------------------------------------------------------- data
class TeacherDataConfig(Strict):
    """Teacher-student data of spec kernel-regime-transformer.md, section 5."""

    name: Literal["teacher"] = "teacher"
    n: Annotated[int, Field(ge=2)] = 5000
    T: PositiveInt = 16
    d: PositiveInt = 8
    K: PositiveInt = 8192
    anchors: PositiveInt = 16
    nu_c: Annotated[float, Field(ge=0)] = 3.0
    nu_u: Annotated[float, Field(ge=0)] = 3.0
    nu_w: Annotated[float, Field(ge=0)] = 3.0
    activation: Literal["tanh", "erf"] = "tanh"
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2
    noise: Annotated[float, Field(ge=0)] = 0.0
    seed: int | None = None


class ArLagDataConfig(Strict):
    """Autoregressive lag-L task of spec recurrent-baseline.md, section 2 (windows of T = L + 1 tokens)."""

    name: Literal["ar-lag"] = "ar-lag"
    L: PositiveInt = 4
    n: Annotated[int, Field(ge=2)] = 5000
    coefficient: Annotated[float, Field(gt=-1, lt=1)] = 0.9
    noise_variance: PositiveFloat = 0.1
    burn_in: Annotated[int, Field(ge=0)] = 800
    clip_tokens: bool = False
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2
    seed: int | None = None


class SeriesDataConfig(Strict):
    """The same windowing over a recorded series shipped with statsmodels (spec section 4)."""

    name: Literal["series"] = "series"
    recording: Literal["co2", "sunspots"] = "co2"
    L: PositiveInt = 4
    n: Annotated[int, Field(ge=2)] | None = None
    clip_tokens: bool = False
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2
    seed: int | None = None


DataConfig = Annotated[Union[TeacherDataConfig, ArLagDataConfig, SeriesDataConfig],
                       Field(discriminator="name")]


# -------------------------------------------------------------------------------------- training
class Radii(Strict):
    """Projection radii rho per block; the ball of each head has radius rho / sqrt(m)."""

    c: Radius = 3.0
    u: Radius = 3.0
    w: Radius = 3.0


class TrainConfig(Strict):
    """Trainer settings (spec kernel-regime-transformer.md, section 3)."""

    method: Literal["gd", "projgd", "projsgd"] = "projgd"
    steps: PositiveInt = 4000
    lr: PositiveFloat | None = None
    batch_size: PositiveInt = 1
    radius: Radii = Radii()
    loss: Literal["mse", "half-mse", "half-sum"] | None = None
    record_every: PositiveInt | None = None

    @field_validator("radius", mode="before")
    @classmethod
    def _radius_shorthand(cls, value: Any) -> Any:
        if value is None or isinstance(value, (int, float, str)):
            value = "none" if value is None else value
            return {"c": value, "u": value, "w": value}
        return value

    @property
    def step_size(self) -> float:
        """The step size in force: `lr`, or the default 1.75 / sqrt(steps)."""
        return self.lr if self.lr is not None else 1.75 / self.steps**0.5

    @property
    def record_interval(self) -> int:
        """Steps between recorded curve points (about 500 points per run by default)."""
        return self.record_every or max(1, self.steps // 500)


class RunConfig(Strict):
    """Everything that determines one training run; its hash is the run's identity."""

    model: ModelConfig = KernelTransformerConfig()
    data: DataConfig = TeacherDataConfig()
    train: TrainConfig = TrainConfig()
    seed: int = 0
    device: str = "cpu"
    dtype: Literal["float32", "float64"] = "float32"

    @field_validator("model", "data", mode="before")
    @classmethod
    def _name_shorthand(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str):
            name, _, recording = value.partition(":")  # "series:co2" names a recorded series
            return {"name": name, "recording": recording} if recording else {"name": name}
        if isinstance(value, dict) and "name" not in value:
            return {"name": _DEFAULT_NAMES[info.field_name], **value}
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value != "cpu" and not value.startswith("cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]' (got {value!r})")
        return value


_DEFAULT_NAMES = {"model": "kernel-transformer", "data": "teacher"}


class ConfigError(ValueError):
    """An invalid configuration; the message is one line naming field, value and what is allowed."""


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem: `field = value: what is allowed`."""
    lines = []
    for item in error.errors():
        loc = [str(p) for p in item["loc"] if not _is_union_tag(p)]
        field = ".".join(loc) or "config"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field" + _allowed_fields(error.title, loc)
        lines.append(f"{field} = {item['input']!r}: {message}")
    return "; ".join(lines)


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and (part in _UNION_TAGS or part.startswith(("function-", "literal[")))


_UNION_TAGS = {"kernel-transformer", "indrnn", "teacher", "ar-lag", "series", "float", "constrained-float"}


def _allowed_fields(title: str, loc: list[str]) -> str:
    section: Any = RunConfig
    for part in loc[:-1]:
        annotation = section.model_fields.get(part) if hasattr(section, "model_fields") else None
        if annotation is None:
            return ""
        section = _section_class(annotation.annotation, part)
    if section is None or not hasattr(section, "model_fields"):
        return ""
    return f" (allowed: {', '.join(section.model_fields)})"


def _section_class(annotation: Any, part: str) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def parse_config(raw: dict[str, Any]) -> RunConfig:
    """Validate a nested dict into a :class:`RunConfig`, raising :class:`ConfigError`."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML config file, apply dotted overrides (`{"model.m": 64}`) and validate."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read config file {str(path)!r}: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping, not {type(raw).__name__}")
    return parse_config(apply_overrides(raw, overrides or {}))


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `raw` with each dotted key (`"train.radius.w"`) set to its value."""
    result = _deep_copy(raw)
    for dotted, value in overrides.items():
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


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """The resolved config as plain JSON-compatible data (every default filled in)."""
    return config.model_dump(mode="json")
