"""The registry of named recorders: every measurement along training is one entry here.

An entry is (name, version, build): `build(RecorderContext) -> Recorder` (attnlab.recorder: the one
interface; a recorder adds curve columns every `every` steps and summary keys from the finished
curves). Entries marked `always` are built by the trainer for every run, for the stacked runs at
once; the others are asked for by name in a config (`diagnostics.record: {name: interval}`; a plugin adds
entries with `register`) and built per run by `build_recorders`, as recorders of that one run
(RunRecorder). Summary sections that several recorders fill (`max`) are
merged. RESULTS_VERSION hashes the entries' (name, version) pairs and CORE_VERSION (the trainer's
own curve columns and summary keys): bump an entry's version when what it records changes, and
stored runs are recomputed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from attnlab.config import DiagnosticsConfig, TrainConfig
from attnlab.data.dataset import Dataset
from attnlab.models.base import Model, Params
from attnlab.ntk.drift import NTKRecorder
from attnlab.recorder import Recorder
from attnlab.train.diagnostics import FeatureRecorder, WeightChangeRecorder
from attnlab.train.gradient_norms import (BlockGradientRecorder, BlockMaxRecorder, GradientNormRecorder,
                                         SequenceGradientRecorder)
from attnlab.train.projection import BallUsageRecorder, HeadBallRecorder, block_radii
from attnlab.train.smoothness import SmoothnessRecorder

CORE_VERSION = 2   # the trainer's own columns (train_loss, val_loss) and summary keys (iterates, gap, ...)


@dataclass(frozen=True)
class RecorderContext:
    """What a recorder is built from: the model, the initial parameters (one run's; stacked (S, ...)
    for `always` entries), the run's data (None for `always` entries), its train config, the
    interval asked for, the diagnostics config and the config field that asked (for messages)."""

    model: Model
    params0: Params
    data: Dataset | None
    train: TrainConfig
    every: int
    diagnostics: DiagnosticsConfig = DiagnosticsConfig()
    field: str = "diagnostics.record"


@dataclass(frozen=True)
class RecorderEntry:
    """A named measurement: `build(context)` makes its recorder; bump `version` when its columns or
    summary keys change; `always`: recorded for every run (a stacked recorder)."""

    name: str
    version: int
    build: Callable[[RecorderContext], Recorder]
    always: bool = False


def projected_radii(model: Model, train: TrainConfig) -> dict[str, float | None]:
    """The radius rho of every block's balls under projected methods; {} under plain GD."""
    if train.method not in ("projgd", "projsgd"):
        return {}
    return block_radii(model.radius_keys, train.radius.model_dump())


def _ntk(c: RecorderContext) -> NTKRecorder:
    samples = c.diagnostics.ntk_samples
    X = c.data.X_train if samples is None else c.data.X_train[:samples]
    return NTKRecorder(c.model, X, c.params0, every=c.every, field=c.field)


ENTRIES = [
    # For every run, stacked (their summary keys follow in this order).
    # sequence_grad_norm
    RecorderEntry("sequence_gradient", 1, always=True,
                  build=lambda c: SequenceGradientRecorder(c.model.sequence_block, c.train.steps)),
    # grad_norm_<block>, dist_<block>, grad_norm; max.grad_norm*, max.dist_*, grad_norms
    RecorderEntry("gradients", 1, lambda c: BlockGradientRecorder(c.model.blocks, c.every), always=True),
    # head_radius, max_head_distance
    RecorderEntry("heads", 1, always=True,
                  build=lambda c: HeadBallRecorder(projected_radii(c.model, c.train), c.model.blocks, c.model.width)),
    # On request (diagnostics.record.<name>). alpha, logit_std, attention_*, train_accuracy
    RecorderEntry("attention", 1, lambda c: FeatureRecorder(c.model, c.data.X_train, c.data.y_train, c.every, c.field)),
    # rel_change_<block>, rel_dist_<block>, rel_change_all, rel_dist_all
    RecorderEntry("weight_change", 1, lambda c: WeightChangeRecorder(c.params0, c.every)),
    # ntk_lambda_min, ntk_drift, ntk_trace_<block>
    RecorderEntry("ntk", 1, _ntk),
    # output_grad_norm, output_grad_bound, output_grad_ratio; max.output_grad_*
    RecorderEntry("smoothness", 1, lambda c: SmoothnessRecorder(c.model, c.data.X_train, c.every, c.field)),
    # grad_full_<sequence block>: the full-batch gradient norm (also under projsgd)
    RecorderEntry("full_gradient", 1, lambda c: GradientNormRecorder(
        c.model, c.data.X_train, c.data.y_train, every=c.every, loss=c.train.loss)),
    # sequence_grad_block_max.{mean, sd, count, block_steps}: the interval is the block length in steps
    RecorderEntry("block_max", 1, lambda c: BlockMaxRecorder(c.model, c.every, c.train.steps, c.field)),
    # ball_usage_<block>, ball_boundary_<block>; max.ball_usage_*, max.ball_boundary_*
    RecorderEntry("ball", 1, lambda c: BallUsageRecorder(
        c.params0, block_radii(c.model.radius_keys, c.train.radius.model_dump()), c.model.width, c.every, c.field)),
]
REGISTRY: dict[str, RecorderEntry] = {entry.name: entry for entry in ENTRIES}


def register(entry: RecorderEntry) -> RecorderEntry:
    """Add a plugin's recorder to the registry, asked for by name (`diagnostics.record`); ValueError
    for a name already taken or an always-on entry. RESULTS_VERSION stays the package's: runs that
    ask for the entry differ from others by their config, so rename it when what it records changes."""
    if entry.always:
        raise ValueError(f"recorder {entry.name!r}: a plugin's recorder is asked for by name, not always on")
    held = REGISTRY.get(entry.name)
    if held is not None and held is not entry:
        raise ValueError(f"recorder {entry.name!r}: the name is taken; choose another")
    REGISTRY[entry.name] = entry
    return entry


def results_version(registry: Mapping[str, RecorderEntry] = REGISTRY, core: int = CORE_VERSION) -> str:
    """8 hex digits of the SHA-256 of the core version and the sorted (name, version) pairs."""
    pairs = sorted((entry.name, entry.version) for entry in registry.values())
    return hashlib.sha256(json.dumps({"core": core, "recorders": pairs}).encode()).hexdigest()[:8]


RESULTS_VERSION: str = results_version()


def requested(config: DiagnosticsConfig,
              registry: Mapping[str, RecorderEntry] = REGISTRY) -> dict[str, tuple[int, str]]:
    """{entry name: (interval, config field that asked)} in registry order, from `record`;
    ValueError for an unknown or always-on name."""
    asked: dict[str, tuple[int, str]] = {}
    optional = sorted(name for name, entry in registry.items() if not entry.always)
    for name, every in config.record.items():
        field = f"diagnostics.record.{name}"
        if name not in registry or registry[name].always:
            why = "is recorded for every run" if name in registry else "is no recorder"
            raise ValueError(f"{field} = {every}: {name!r} {why}; allowed names: {', '.join(optional)}")
        asked[name] = (every, field)
    return {name: asked[name] for name in registry if name in asked}


def build_recorders(config: DiagnosticsConfig, model: Model, params0: Params, data: Dataset,
                    train: TrainConfig | None = None) -> list[Recorder]:
    """One run's recorders that `config` asks for (none by default), in registry order."""
    train = train or TrainConfig()
    return [REGISTRY[name].build(RecorderContext(model, params0, data, train, every, config, field))
            for name, (every, field) in requested(config).items()]


def always_on_recorders(model: Model, theta0: Params, train: TrainConfig) -> list[Recorder]:
    """The recorders of every run, for the stacked runs starting at theta0 (S, ...), recording
    every train.record_interval steps."""
    context = RecorderContext(model, theta0, None, train, train.record_interval, field="recorders")
    return [entry.build(context) for entry in REGISTRY.values() if entry.always]


def merge_summary(summary: dict[str, Any], part: dict[str, Any]) -> None:
    """Add `part` to `summary` in place; sections both have as dicts (`max`) are merged."""
    for key, value in part.items():
        if isinstance(value, dict) and isinstance(summary.get(key), dict):
            summary[key].update(value)
        else:
            summary[key] = value
