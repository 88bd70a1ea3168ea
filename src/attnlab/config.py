"""Validated run configurations.

A run is fully described by a :class:`RunConfig`: which model, which data, how to train, the seed,
the device and the dtype. Configs are frozen pydantic models that refuse unknown fields; every
default is filled in on load, so the dumped config is the *resolved* config that identifies a run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import yaml
from pydantic import BeforeValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


def _check_radius(value: Any) -> Any:
    if value is None:
        return "none"
    if value == "none" or (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0):
        return value
    raise ValueError("must be a number >= 0 or 'none'")


Radius = Annotated[Union[float, Literal["none"]], BeforeValidator(_check_radius)]


class Strict(BaseModel):
    """Base for every validated section (run configs, experiment files): unknown fields are errors,
    instances are immutable, and the docstring under a field is its description (the help of its
    command-line option)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True)


class ModelSection(Strict):
    """Base of the model sections: every subclass (tagged by a Literal `name`) joins ModelConfig,
    so a new model needs its config class here and its model file, nothing else. WIDTH_FIELD names
    the subclass's width field (heads, units or embedding dimension)."""

    WIDTH_FIELD: ClassVar[str] = "m"

    @property
    def width(self) -> int:
        """The width: the value of the field WIDTH_FIELD."""
        return getattr(self, self.WIDTH_FIELD)

    def with_width(self, width: int) -> "ModelSection":
        """The same model at another width (validated)."""
        return type(self).model_validate({**self.model_dump(), self.WIDTH_FIELD: width})


class DataSection(Strict):
    """Base of the data sections: every subclass (tagged by a Literal `name`) joins DataConfig.

    Their shapes: n_train and n_val sequences of `tokens` tokens of dimension `d`, targets with
    `outputs` columns; `with_samples(n)` gives the same data on fewer samples (for probes)."""

    outputs: ClassVar[int] = 1
    """Target columns: 1 for scalar targets."""

    def with_samples(self, n_train: int) -> "DataSection":
        """The same data on at most n_train training samples (and fewer validation samples)."""
        raise NotImplementedError


def _sections(base: type) -> Any:
    """The union of the config classes deriving from `base`, told apart by their `name`."""
    return Annotated[Union[tuple(base.__subclasses__())], Field(discriminator="name")]


# --------------------------------------------------------------------------------------- models
class _PairedWidth(Strict):
    """The width m of a model whose fields `paired` and `m` say: paired initialisation (f = 0 at
    initialisation) needs m even. The subclass declares the fields, so `name` stays first."""

    @field_validator("m", check_fields=False)
    @classmethod
    def _even_width(cls, m: int, info: Any) -> int:
        if info.data.get("paired", True) and m % 2:
            raise ValueError("must be even for paired initialisation (use an even width, or paired: false)")
        return m


class KernelTransformerConfig(_PairedWidth, ModelSection):
    """Multi-head kernel-regime Transformer (spec kernel-regime-transformer.md, section 1)."""

    name: Literal["kernel-transformer"] = "kernel-transformer"
    paired: bool = True
    """Paired initialisation (f = 0 at initialisation; needs an even width)."""
    m: PositiveInt = 64
    """Width: the number of heads."""
    activation: Literal["tanh", "erf"] = "tanh"
    """Activation sigma of the read-out."""


class ShallowEncoderConfig(ModelSection):
    """Shallow encoder-only Transformer of Wu et al. (spec shallow-encoder.md, section 1).

    scaling: tau_0 = d_m^(-p) with p = 1/2 ("sqrt"), p = 1 ("linear") or a number p >= 0.
    outputs: 1 gives a scalar read-out; "auto" takes one output per class when the data has one-hot
    targets (digits, mnist) and a scalar read-out otherwise.
    """

    WIDTH_FIELD: ClassVar[str] = "d_m"
    name: Literal["shallow-encoder"] = "shallow-encoder"
    d_m: PositiveInt = 128
    """Width: the embedding dimension d_m."""
    phi: Literal["flatten", "mean"] = "flatten"
    scaling: Union[Literal["sqrt", "linear"], Annotated[float, Field(ge=0)]] = "sqrt"
    init: Literal["lecun", "he", "ntk"] = "lecun"
    outputs: Union[PositiveInt, Literal["auto"]] = "auto"


class IndRNNConfig(_PairedWidth, ModelSection):
    """Diagonal recurrent network of spec recurrent-baseline.md, section 1; `gain` is the recurrent gain g."""

    name: Literal["indrnn"] = "indrnn"
    paired: bool = True
    """Paired initialisation (f = 0 at initialisation; needs an even width)."""
    m: PositiveInt = 64
    """Width: the number of recurrent units."""
    activation: Literal["tanh", "erf"] = "tanh"
    """Activation sigma of the recurrence."""
    gain: PositiveFloat = 1.5
    """Recurrent gain g of the initialisation (u uniform on {-g, +g})."""


ModelConfig = _sections(ModelSection)


# ----------------------------------------------------------------------------------------- data
class _Sequences:
    """Shapes of generated sequences: n samples of T tokens, a share val_fraction held out."""

    @property
    def tokens(self) -> int:
        """Tokens per sequence: T."""
        return self.T

    @property
    def n_samples(self) -> int:
        """Samples generated (train + validation)."""
        return self.n

    @property
    def n_train(self) -> int:
        """Training samples after the validation split."""
        return _train_share(self.n, self.val_fraction)

    @property
    def n_val(self) -> int:
        """Validation samples."""
        return self.n - self.n_train

    def with_samples(self, n_train: int) -> DataSection:
        return self.model_copy(update={"n": min(self.n, _total_for(n_train, self.val_fraction))})


def _train_share(n: int, val_fraction: float) -> int:
    return round(n * (1 - val_fraction))


def _total_for(n_train: int, val_fraction: float) -> int:
    """Samples to draw for about n_train training samples after the split (at least 2)."""
    return max(2, round(n_train / (1 - val_fraction)))


class _TrainShare(Strict):
    """A data section that holds out val_fraction of its n samples: at least one must be left to train
    on (the subclass declares n before val_fraction)."""

    @field_validator("val_fraction", check_fields=False)
    @classmethod
    def _leaves_training_samples(cls, val_fraction: float, info: Any) -> float:
        n = info.data.get("n")
        if n is not None and _train_share(n, val_fraction) < 1:
            raise ValueError(f"leaves no training sample of data.n = {n} (use a smaller share)")
        return val_fraction


class TeacherDataConfig(_Sequences, _TrainShare, DataSection):
    """Teacher-student data of spec kernel-regime-transformer.md, section 5.

    attention: "full" computes the teacher's attention logits x_t^T W_k x_T (the paper's equations);
    "diagonal" uses only diag(W_k), as the published code of Arda et al. does (its einsum
    "kdd,bd->bkd" takes the diagonal of W_k), so its figures can be reproduced.
    """

    name: Literal["teacher"] = "teacher"
    n: Annotated[int, Field(ge=2)] = 5000
    """Number of samples (train + validation)."""
    T: PositiveInt = 16
    """Sequence length."""
    d: PositiveInt = 8
    """Token dimension."""
    K: PositiveInt = 8192
    """Monte-Carlo draws of the teacher."""
    anchors: PositiveInt = 16
    nu_c: Annotated[float, Field(ge=0)] = 3.0
    nu_u: Annotated[float, Field(ge=0)] = 3.0
    nu_w: Annotated[float, Field(ge=0)] = 3.0
    activation: Literal["tanh", "erf"] = "tanh"
    """The teacher's activation; unless given, the student's (model.activation), see RunConfig."""
    attention: Literal["full", "diagonal"] = "full"
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2
    noise: Annotated[float, Field(ge=0)] = 0.0
    seed: int | None = None

    def with_draws(self, K: int) -> "TeacherDataConfig":
        """The same teacher with at most K Monte-Carlo draws."""
        return self.model_copy(update={"K": min(self.K, K)})


TokenNorm = Literal["none", "token", "sequence"]
NormTarget = Union[PositiveFloat, Literal["sqrt-d"]]
Patch = Union[Literal["rows"], PositiveInt]


class RandomSequencesConfig(_Sequences, _TrainShare, DataSection):
    """Random sequences with N(0, 1) labels (spec shallow-encoder.md, W1/W4).

    token_norm: "token" rescales every token, "sequence" every sequence, to norm `norm` ("sqrt-d":
    sqrt(d) per token, the W4 setting); "none" keeps N(0, I/d) tokens times `norm`.
    """

    name: Literal["random-sequences"] = "random-sequences"
    n: PositiveInt = 100
    """Number of samples (train + validation)."""
    T: PositiveInt = 10
    """Sequence length."""
    d: PositiveInt = 100
    """Token dimension."""
    token_norm: TokenNorm = "token"
    norm: NormTarget = 1.0
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0
    seed: int | None = None


class _Images:
    """Shapes of image data cut into patches: `patch` = k gives (side / k)^2 tokens of k^2 pixels,
    "rows" one token of `side` pixels per row (side: the image's, IMAGE_SIDE)."""

    IMAGE_SIDE: ClassVar[int]   # the subclass's fields: patch, n, n_val
    outputs: ClassVar[int] = 10   # one-hot targets of the ten digit classes

    @property
    def tokens(self) -> int:
        """Tokens per sequence (patches or rows of an image)."""
        return self.IMAGE_SIDE if self.patch == "rows" else (self.IMAGE_SIDE // self.patch) ** 2

    @property
    def d(self) -> int:
        """Token dimension (pixels per patch or row)."""
        return self.IMAGE_SIDE if self.patch == "rows" else self.patch**2

    @property
    def n_samples(self) -> int:
        """Images drawn (train + validation)."""
        return self.n + self.n_val

    @property
    def n_train(self) -> int:
        """Training images."""
        return self.n

    def with_samples(self, n_train: int) -> DataSection:
        return self.model_copy(update={"n": min(self.n, n_train), "n_val": min(self.n_val, n_train // 3)})


class DigitsConfig(_Images, DataSection):
    """scikit-learn's 8x8 digits as patch sequences with one-hot targets (spec W5).

    patch: k cuts k x k patches (k divides 8: 4 gives T = 4 tokens of d = 16), "rows" one token per row.
    """

    IMAGE_SIDE: ClassVar[int] = 8
    name: Literal["digits"] = "digits"
    n: PositiveInt = 500
    """Number of training images."""
    n_val: Annotated[int, Field(ge=0)] = 0
    patch: Patch = 4
    token_norm: TokenNorm = "token"
    norm: NormTarget = 1.0
    seed: int | None = None


class MnistConfig(_Images, DataSection):
    """MNIST from the IDX files in directory `path` (train-*, and t10k-* for validation), as patches."""

    IMAGE_SIDE: ClassVar[int] = 28
    name: Literal["mnist"] = "mnist"
    path: str
    n: PositiveInt = 1000
    """Number of training images."""
    n_val: Annotated[int, Field(ge=0)] = 0
    patch: Patch = 7
    token_norm: TokenNorm = "token"
    norm: NormTarget = 1.0
    seed: int | None = None


FIXED_CONTEXT = 128
SERIES_TOKEN_DIM = 17   # a window's token: the value and 8 sin/cos pairs of its position (data/sequences.py)


class _Windows:
    """Shapes of windows of a scalar series: `window` tokens of SERIES_TOKEN_DIM features."""

    d: ClassVar[int] = SERIES_TOKEN_DIM   # the subclass's fields: n, val_fraction and a `window`

    @property
    def tokens(self) -> int:
        """Tokens per window."""
        return self.window

    @property
    def n_samples(self) -> int | None:
        """Windows drawn (train + validation); None: every window of a recording (known once read)."""
        return self.n

    @property
    def n_train(self) -> int | None:
        """Training windows after the validation split (None: unknown before the recording is read)."""
        return None if self.n is None else _train_share(self.n, self.val_fraction)

    @property
    def n_val(self) -> int | None:
        """Validation windows (None: unknown before the recording is read)."""
        return None if self.n is None else self.n - self.n_train

    def with_samples(self, n_train: int) -> DataSection:
        total = _total_for(n_train, self.val_fraction)
        return self.model_copy(update={"n": total if self.n is None else min(self.n, total)})


class ArLagDataConfig(_Windows, _TrainShare, DataSection):
    """Autoregressive lag-L task of spec recurrent-baseline.md, section 2.

    context: "matched" windows hold T = L + 1 tokens (the informative token is the first one);
    "fixed" windows hold T tokens for every lag (default 128, as gradnorm_experiment.py runs it), so
    the lag only moves the informative token inside the window (needs L <= T). T is null under
    "matched". standardise_targets: z-score the targets (the published MSE run does, its
    gradient-norm run does not).
    """

    name: Literal["ar-lag"] = "ar-lag"
    L: PositiveInt = 4
    """Lag L of the series (windows of T = L + 1 tokens under context 'matched')."""
    context: Literal["matched", "fixed"] = "matched"
    T: PositiveInt | None = Field(default=None, validate_default=True)
    """Window length under context 'fixed' (default 128)."""
    n: Annotated[int, Field(ge=2)] = 5000
    """Number of windows (train + validation)."""
    coefficient: Annotated[float, Field(gt=-1, lt=1)] = 0.9
    noise_variance: PositiveFloat = 0.1
    burn_in: Annotated[int, Field(ge=0)] = 800
    clip_tokens: bool = False
    standardise_targets: bool = True
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2
    seed: int | None = None

    @field_validator("T")
    @classmethod
    def _window_length(cls, T: int | None, info: Any) -> int | None:
        context, L = info.data.get("context"), info.data.get("L")
        if context == "matched":
            if T is not None:
                raise ValueError("only with context 'fixed' (context 'matched' uses T = L + 1); "
                                 "leave it unset or set data.context: fixed")
            return None
        T = FIXED_CONTEXT if T is None else T
        if L is not None and L > T:
            raise ValueError(f"must be >= data.L = {L} under context 'fixed' (the token at lag L "
                             "must lie inside the window)")
        return T

    @property
    def window(self) -> int:
        """The number of tokens per window: T under context 'fixed', L + 1 under 'matched'."""
        return self.T if self.context == "fixed" else self.L + 1


class SeriesDataConfig(_Windows, _TrainShare, DataSection):
    """The same windowing over a recorded series shipped with statsmodels (spec section 4)."""

    name: Literal["series"] = "series"
    recording: Literal["co2", "sunspots"] = "co2"
    L: PositiveInt = 4
    """Lag L: windows of L + 1 tokens."""
    n: Annotated[int, Field(ge=2)] | None = None
    """Number of windows (train + validation; null: every window of the recording)."""
    clip_tokens: bool = False
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2
    seed: int | None = None

    @property
    def window(self) -> int:
        """The number of tokens per window: L + 1."""
        return self.L + 1


DataConfig = _sections(DataSection)


# -------------------------------------------------------------------------------------- training
class Radii(Strict):
    """Projection radii rho per block; the ball of each head has radius rho / sqrt(m)."""

    c: Radius = 3.0
    u: Radius = 3.0
    w: Radius = 3.0


class ReferenceConfig(Strict):
    """The reference run that estimates the best training loss in the projection balls, for the
    optimisation gap (loss after `steps` minus the reference loss): projected gradient descent from
    the run's last iterate (so from the same initialisation and data) with backtracking, its step
    starting at `step_factor` times the training step and halved whenever a step would not lower
    the loss, until the loss changed by less than `tolerance` (relative) over the last `window`
    steps, or for at most `max_steps` steps."""

    max_steps: PositiveInt
    tolerance: PositiveFloat = 1e-3
    window: PositiveInt = 50
    step_factor: PositiveFloat = 10.0


class TrainConfig(Strict):
    """Trainer settings (spec kernel-regime-transformer.md, section 3). reference: estimate the
    optimisation gap of every run by a reference run (ReferenceConfig; null: no gap)."""

    method: Literal["gd", "projgd", "projsgd"] = "projgd"
    """Trainer: gradient descent, projected GD or projected SGD."""
    steps: PositiveInt = 4000
    """Number of steps."""
    lr: PositiveFloat | None = None
    """Step size (default 1.75/sqrt(steps))."""
    batch_size: PositiveInt = 1
    """Mini-batch size of projsgd."""
    radius: Radii = Radii()
    """Projection radius rho of every block (c, u, w), or 'none'; one value sets all three."""
    loss: Literal["mse", "half-mse", "half-sum"] | None = None
    record_every: PositiveInt | None = None
    """Steps between recorded curve points (default about 500 points per run)."""
    reference: ReferenceConfig | None = None

    @model_validator(mode="after")
    def _reference_full_batch(self) -> "TrainConfig":
        if self.reference is not None and self.method == "projsgd":
            raise ValueError("reference: the optimisation gap needs a full-batch method (gd or projgd), "
                             "not projsgd")
        return self

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


class DiagnosticsConfig(Strict):
    """Per-step diagnostics recorded beside the loss (spec shallow-encoder.md, section 3).

    every: steps between feature, attention, accuracy and weight-change records (null: off);
    ntk_every: steps between NTK evaluations (smallest eigenvalue, drift; null: off);
    ntk_samples: evaluate the NTK on the first n training samples only (null: all);
    smoothness_every: steps between smoothness records (largest per-sample output-gradient norm and,
    for the kernel Transformer, its analytic T-free bound; null: off);
    record: recorders by name and the steps between their records, e.g. {attention: 10, ntk: 10}
    (the names of attnlab.train.recorders, checked when the recorders are built; every = k is
    {attention: k, weight_change: k}, ntk_every {ntk: k}, smoothness_every {smoothness: k}).
    """

    every: PositiveInt | None = None
    ntk_every: PositiveInt | None = None
    ntk_samples: PositiveInt | None = None
    smoothness_every: PositiveInt | None = None
    record: dict[str, PositiveInt] = {}

    def __hash__(self) -> int:   # configs are hashable (cache keys); `record` is a dict
        return hash((self.every, self.ntk_every, self.ntk_samples, self.smoothness_every,
                     tuple(sorted(self.record.items()))))


class RunConfig(Strict):
    """Everything that determines one run; its hash is the run's identity.

    `task` is what the run does: train the model, measure one of the kernel-regime error terms
    at initialisation (spec kernel-regime-transformer.md, E1 and E2) without training, or measure
    the peak memory of one forward pass and of one training step at initialisation.
    """

    task: Literal["train", "approximation-error", "linearisation-error", "peak-memory"] = "train"
    model: ModelConfig = KernelTransformerConfig()
    """Model family."""
    data: DataConfig = Field(TeacherDataConfig(), validate_default=True)   # the teacher follows the model
    """Data generator (series:NAME names a recorded series)."""
    train: TrainConfig = TrainConfig()
    diagnostics: DiagnosticsConfig = DiagnosticsConfig()
    seed: Annotated[int, Field(ge=-2**63, lt=2**63)] = 0
    """Run seed (data, initialisation, batches)."""
    device: str = "cpu"
    """cpu or cuda[:N]."""
    dtype: Literal["float32", "float64"] = "float32"
    """Floating-point type of the model and data."""

    @field_validator("model", "data", mode="before")
    @classmethod
    def _name_shorthand(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str):
            value = {"name": value}
        if isinstance(value, dict) and "name" not in value:
            return {"name": _DEFAULT_NAMES[info.field_name], **value}
        if isinstance(value, dict) and isinstance(value["name"], str) and ":" in value["name"]:
            name, _, recording = value["name"].partition(":")  # "series:co2" names a recorded series
            return {**value, "name": name, "recording": recording}
        return value

    @field_validator("data")
    @classmethod
    def _teacher_follows_student(cls, data: Any, info: Any) -> Any:
        """The teacher uses the student's activation: unless data.activation is given, it is
        model.activation (for models with an activation), for Python, YAML and the CLI alike."""
        model = info.data.get("model")   # validated before data (declared first); absent if invalid
        if (isinstance(data, TeacherDataConfig) and "activation" not in data.model_fields_set
                and model is not None and "activation" in type(model).model_fields
                and data.activation != model.activation):
            return data.model_copy(update={"activation": model.activation})
        return data

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not re.fullmatch(r"cpu|cuda(:[0-9]+)?", value):
            raise ValueError("allowed: cpu, cuda or cuda:N (N a device number)")
        return value

    @model_validator(mode="after")
    def _batch_within_training_set(self) -> "RunConfig":
        n_train = self.data.n_train
        if self.train.method == "projsgd" and n_train is not None and self.train.batch_size > n_train:
            raise ValueError(f"train.batch_size = {self.train.batch_size}: at most the {n_train} training "
                             "samples (data.n_train)")
        return self


_DEFAULT_NAMES = {"model": "kernel-transformer", "data": "teacher"}


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
    """Config classes of the model and data unions (or of one `section`) by their `name` tag."""
    members = []
    for union in {"model": (ModelConfig,), "data": (DataConfig,)}.get(section, (ModelConfig, DataConfig)):
        inner = get_args(union)[0]
        members.extend(get_args(inner) or (inner,))
    return {cls.model_fields["name"].default: cls for cls in members}


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
        inner = _models_in(info.annotation) if info else []
        section = inner[0] if inner else section   # a key, an index or a union branch: stay
    return section


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The config classes an annotation holds: itself, the members of a union, list or dict items."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [cls for arg in get_args(annotation) for cls in _models_in(arg)]


# ------------------------------------------------------------------------------------ introspection
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
        holders = [cls for info in infos for cls in _models_in(info.annotation)]
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
    models = _models_in(info.annotation)
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


def parse_config(raw: dict[str, Any]) -> RunConfig:
    """Validate a nested dict into a :class:`RunConfig`, raising :class:`ConfigError`."""
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


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """The resolved config as plain JSON-compatible data (every default filled in)."""
    return config.model_dump(mode="json")


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
