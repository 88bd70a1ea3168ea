"""The schema of a run: the validated config classes.

A run is fully described by a :class:`RunConfig`: which model, which data, how to train, the seed,
the device and the dtype. Configs are frozen pydantic models that refuse unknown fields; every
default is filled in on load, so the dumped config is the *resolved* config that identifies a run.
The model and data sections are registered by their `name` (SECTIONS): a subclass of ModelSection
or DataSection joins RunConfig when it is defined, in this package or in a plugin.
"""

from __future__ import annotations

import copy
import re
from typing import Annotated, Any, ClassVar, Literal, Union, get_origin

from pydantic import BeforeValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

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


SECTIONS: dict[str, dict[str, type[BaseModel]]] = {"model": {}, "data": {}}
"""The config classes of RunConfig's model and data sections by their `name` tag, in the order they
were defined: the built-in ones, then those of plugins (attnlab.config.plugins)."""


class _Section(Strict):
    """A model or data section: a subclass with a Literal `name` registers itself in SECTIONS."""

    KIND: ClassVar[str]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        register_section(cls)


def register_section(cls: type[BaseModel]) -> None:
    """Make `cls` (a ModelSection or DataSection subclass) the section named by its `name` default,
    and rebuild RunConfig so that it accepts it. Done on class definition; a class without a `name`
    field (a base) is skipped. TypeError for a name another class holds, or a `name` that is no Literal."""
    info = cls.model_fields.get("name")
    if info is None:
        return
    name, kind = info.default, cls.KIND
    if get_origin(info.annotation) is not Literal or not isinstance(name, str):
        raise TypeError(f"{cls.__qualname__}.name must be a Literal string with that default, "
                        f"e.g. name: Literal['my-{kind}'] = 'my-{kind}'")
    held = SECTIONS[kind].get(name)
    if held is not None and _where(held) != _where(cls):
        raise TypeError(f"{kind}.name = {name!r} is taken by {_where(held)}; give {_where(cls)} another name")
    SECTIONS[kind][name] = cls
    if "RunConfig" in globals():
        _rebuild_run_config()


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _rebuild_run_config() -> None:
    """RunConfig's model and data fields, discriminated unions of every registered section."""
    for kind in SECTIONS:
        info = copy.copy(RunConfig.model_fields[kind])
        info.annotation = Union[tuple(SECTIONS[kind].values())]
        RunConfig.model_fields[kind] = info
    RunConfig.model_rebuild(force=True)


class ModelSection(_Section):
    """Base of the model sections: every subclass (tagged by a Literal `name`) joins RunConfig.model,
    so a new model needs its config class and its model class, nothing else (in the package or a
    plugin). WIDTH_FIELD names the subclass's width field (heads, units or embedding dimension)."""

    KIND: ClassVar[str] = "model"

    WIDTH_FIELD: ClassVar[str] = "m"

    @property
    def width(self) -> int:
        """The width: the value of the field WIDTH_FIELD."""
        return getattr(self, self.WIDTH_FIELD)

    def with_width(self, width: int) -> "ModelSection":
        """The same model at another width (validated)."""
        return type(self).model_validate({**self.model_dump(), self.WIDTH_FIELD: width})


class DataSection(_Section):
    """Base of the data sections: every subclass (tagged by a Literal `name`) joins RunConfig.data.

    Their shapes: n_samples generated, n_train and n_val sequences of `tokens` tokens of dimension
    `d`, targets with `outputs` columns (a subclass provides these as fields or properties);
    `with_samples(n)` gives the same data on fewer samples and `with_draws(K)` on fewer Monte-Carlo
    draws (for probes)."""

    KIND: ClassVar[str] = "data"
    outputs: ClassVar[int] = 1
    """Target columns: 1 for scalar targets."""

    def with_samples(self, n_train: int) -> "DataSection":
        """The same data on at most n_train training samples (and fewer validation samples)."""
        raise NotImplementedError

    def with_draws(self, K: int) -> "DataSection":
        """The same data with at most K Monte-Carlo draws (data without draws: itself)."""
        return self

    def sizes(self) -> dict[str, int | None]:
        """The sizes that set the memory of a run, by the name a message gives them."""
        return {"data.n": self.n_samples, "tokens": self.tokens}


def _sections(kind: str) -> Any:
    """The union of the sections registered so far for `kind` (model or data), told apart by `name`."""
    return Annotated[Union[tuple(SECTIONS[kind].values())], Field(discriminator="name")]


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


ModelConfig = _sections("model")   # the built-in sections (RunConfig.model also takes plugins')


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

    def sizes(self) -> dict[str, int | None]:
        return {**super().sizes(), "data.K": self.K}


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


DataConfig = _sections("data")


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


LEGACY_DIAGNOSTICS = {"every": ("attention", "weight_change"), "ntk_every": ("ntk",),
                      "smoothness_every": ("smoothness",)}
"""The older DiagnosticsConfig fields and the recorders each asked for (now diagnostics.record)."""


class DiagnosticsConfig(Strict):
    """Measurements recorded beside the loss (spec shallow-encoder.md, section 3).

    record: recorders by name and the steps between their records, e.g. {attention: 10, ntk: 10}
    (the names of attnlab.train.recorders, checked when the recorders are built);
    ntk_samples: evaluate the NTK on the first n training samples only (null: all).
    """

    ntk_samples: PositiveInt | None = None
    record: dict[str, PositiveInt] = {}

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, raw: Any) -> Any:
        old = [key for key in LEGACY_DIAGNOSTICS if isinstance(raw, dict) and key in raw]
        if old:
            record = _upgrade_diagnostics(raw)["record"]
            new = ", ".join(f"{name}: {every}" for name, every in record.items())
            raise ValueError(f"{', '.join(old)}: replaced by record (recorders by name), "
                             f"write diagnostics: {{record: {{{new}}}}}")
        return raw

    def __hash__(self) -> int:   # configs are hashable (cache keys); `record` is a dict
        return hash((self.ntk_samples, tuple(sorted(self.record.items()))))

    def every_step(self, ntk_samples: int) -> "DiagnosticsConfig":
        """The same recorders recording every step, the NTK on at most `ntk_samples` samples (probes)."""
        samples = None if self.ntk_samples is None else min(self.ntk_samples, ntk_samples)
        return DiagnosticsConfig(ntk_samples=samples, record=dict.fromkeys(self.record, 1))


def _upgrade_diagnostics(raw: dict[str, Any]) -> dict[str, Any]:
    """A diagnostics mapping in the older spelling with its every / ntk_every / smoothness_every
    moved into record (None values dropped); others unchanged."""
    raw = dict(raw)
    record: dict[str, Any] = {}
    for key, names in LEGACY_DIAGNOSTICS.items():
        every = raw.pop(key, None)
        if every is not None:
            record.update(dict.fromkeys(names, every))
    return {**raw, "record": {**record, **(raw.get("record") or {})}}


_DEFAULT_NAMES = {"model": "kernel-transformer", "data": "teacher"}


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




def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """The resolved config as plain JSON-compatible data (every default filled in)."""
    return config.model_dump(mode="json")


def identity_dict(config: RunConfig) -> dict[str, Any]:
    """The resolved config as its run id hashes it: config_to_dict with the diagnostics in the
    spelling the ids were first computed in (every, ntk_every, smoothness_every beside record), so
    every earlier run id stays valid: smoothness and, recorded at one interval, attention with
    weight_change go back to their older fields; everything else stays in record."""
    raw = config_to_dict(config)
    record = dict(raw["diagnostics"]["record"])
    every = None
    if "attention" in record and record["attention"] == record.get("weight_change"):
        every = record.pop("attention")
        record.pop("weight_change")
    raw["diagnostics"] = {"every": every, "ntk_every": None, "ntk_samples": raw["diagnostics"]["ntk_samples"],
                          "smoothness_every": record.pop("smoothness", None), "record": record}
    return raw


def upgrade_stored(raw: Any) -> Any:
    """A stored run config (a run directory's config.yaml) in today's spelling: one written before
    diagnostics.record was the only spelling has its older diagnostics fields moved into record."""
    if isinstance(raw, dict) and isinstance(raw.get("diagnostics"), dict):
        return {**raw, "diagnostics": _upgrade_diagnostics(raw["diagnostics"])}
    return raw
