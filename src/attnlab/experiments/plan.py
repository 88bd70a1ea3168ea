"""`attnlab reproduce ... --dry-run`: the runs a reproduction would do and reuse, and its wall time.

The estimate is a cost model, not a run of the experiments. Each run's arithmetic is counted from its
shapes (the config's n_train, n_val, tokens T, d and width, and the model's `sample_flops`):

    training      steps x (n_train x gradient + n_val x forward / record interval), the three
                  iterates' final losses, the recorders asked for (smoothness, NTK, ...) and the
                  reference run (at most reference.max_steps more steps)
    measurements  approximation error: n x m fresh teacher draws; linearisation error: one gradient
                  and three forward passes of width m on n inputs; peak memory: one forward pass
                  and one training step on the training set
    teacher data  (n + anchors) x the teacher's K draws, each a kernel-Transformer head; once per
                  data section and seed (the labels are cached, attnlab.data.build_teacher)

Seconds come from calibrations: per kind of work (training a model family, teacher labels, each
measurement task), device, dtype and thread count, two short probes at small sizes measure
seconds = calls x overhead + FLOPs / rate (calls: steps, draws or 1), once per dry run
(`Calibration` keeps them): one on a few samples gives the overhead, one on many the rate. A
training probe takes the median step time of a few steps, and the rest of its time as the fixed
cost of a run. Runs share `workers` processes, so the wall time is the total divided by them.
Training is calibrated per token count T and width: the kernels' speed per FLOP grows several-fold
from T = 5 to T = 97 and from m = 8 to m = 256, so a rate probed at one shape misjudges the others.
The rate probes run at a width where a sample costs at most PROBE_SAMPLE_FLOPS; a wider run's
overhead per step is then measured at its own width on a few samples (memory-bound passes over large
parameters, which the narrow probes keep in cache).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch

from attnlab.config import (ConfigError, DiagnosticsConfig, KernelTransformerConfig, RandomSequencesConfig,
                            RunConfig, TeacherDataConfig, config_to_dict, flatten)
from attnlab.experiments.reproduce import experiment_configs, experiment_file
from attnlab.models import Model, build_model
from attnlab.run import open_store

PROBE_STEPS = 12
PROBE_STEP_FLOPS = 2e8     # FLOPs of one step of the larger training probe
PROBE_TASK_FLOPS = 3e8     # FLOPs of the larger probe of a measurement or of teacher labels
PROBE_SAMPLE_FLOPS = 2e7   # the probe's width is halved until one sample's gradient costs at most this
PROBE_SMALL_SAMPLES = 16   # training samples of the smaller probe (its time is mostly overhead)
PROBE_WIDE_STEPS = 3       # steps of the probe at a run's own width, where the others ran narrower
PROBE_DRAWS = 512          # teacher draws of a labels probe (one chunk of Teacher.labels)
PROBE_TASK_DRAWS = 8       # teacher draws of a measurement probe's data


@dataclass(frozen=True)
class RunShape:
    """The sizes of one run, read from its config: n_train samples (None: a whole recording), T
    tokens of dimension d, the model width, and the training steps (0: a measurement)."""

    n_train: int | None
    T: int
    d: int
    width: int
    steps: int

    def __str__(self) -> str:
        n = "n_train ?" if self.n_train is None else f"n_train {self.n_train}"
        return f"{n}, T {self.T}, d {self.d}, width {self.width}" + (f", {self.steps} steps" if self.steps else "")


def shape_of(config: RunConfig) -> RunShape:
    """The shape of `config`'s run, from its config sections."""
    data = config.data
    steps = config.train.steps if config.task == "train" else 0
    return RunShape(data.n_train, data.tokens, data.d, config.model.width, steps)


@dataclass(frozen=True)
class Work:
    """One kind of work of a run: `calls` (steps, draws or 1) and `flops`; `kind` names its calibration."""

    kind: tuple[str, ...]
    calls: float
    flops: float


@dataclass(frozen=True)
class Rate:
    """seconds = fixed + calls x overhead + flops / flops_per_s (fixed: once per run)."""

    flops_per_s: float
    overhead_s: float
    fixed_s: float = 0.0

    def seconds(self, work: Work) -> float:
        return self.fixed_s + work.calls * self.overhead_s + work.flops / self.flops_per_s


def model_of(config: RunConfig) -> Model:
    """The model of `config` for its data's shapes (no parameters are drawn)."""
    data = config.data
    return build_model(config.model, d=data.d, T=data.tokens, outputs=data.outputs)


def label_work(config: RunConfig) -> Work | None:
    """The teacher's labels of `config`'s data (None: data without a teacher): every sample, and
    every anchor of the transport map, against its K draws, each a kernel-Transformer head
    (attention, read-out and the transport term: a head's gradient arithmetic)."""
    data = config.data
    if not isinstance(data, TeacherDataConfig):
        return None
    teacher = build_model(KernelTransformerConfig(m=data.K, paired=False), d=data.d)
    flops = (data.n_samples + data.anchors) * teacher.sample_flops(data.tokens).gradient
    return Work(("labels", str(torch.get_num_threads())), data.K, flops)


def run_work(config: RunConfig) -> Work:
    """What one run of `config` computes besides its teacher's labels."""
    data, model = config.data, model_of(config)
    threads, where = str(torch.get_num_threads()), (config.dtype, config.device)
    per = model.sample_flops(data.tokens)
    n_train, n_val = data.n_train or 0, data.n_val or 0
    if config.task == "approximation-error":
        return Work((config.task, *where, threads), 1, data.n_samples * per.gradient)
    if config.task == "linearisation-error":
        return Work((config.task, *where, threads), 1, data.n_samples * (per.gradient + 3 * per.forward))
    if config.task == "peak-memory":
        return Work((config.task, config.model.name, *where, threads), 1, n_train * (per.forward + per.gradient))
    train = config.train
    steps, flops = train.steps, train.steps * (n_train * per.gradient + n_val * per.forward / train.record_interval)
    flops += 3 * (n_train + n_val) * per.forward                      # the three iterates' final losses
    if train.reference is not None:                                    # at most max_steps more steps
        steps += train.reference.max_steps
        flops += train.reference.max_steps * n_train * per.gradient
    flops += _recorder_flops(config, model, n_train)
    return Work(("train", config.model.name, *where, f"T {data.tokens}", f"width {config.model.width}", threads),
                steps, flops)


def _recorder_flops(config: RunConfig, model: Model, n_train: int) -> float:
    """FLOPs of the recorders the run's diagnostics ask for (the others only touch parameters)."""
    from attnlab.train.recorders import requested

    try:
        asked = requested(config.diagnostics)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    per, T, flops = model.sample_flops(config.data.tokens), config.data.tokens, 0.0
    for name, (every, _) in asked.items():
        records = config.train.steps // every + 1
        if name in ("smoothness", "full_gradient"):
            flops += records * n_train * per.gradient
        elif name == "attention":
            flops += records * n_train * per.forward
        elif name == "ntk":
            n = min(n_train, config.diagnostics.ntk_samples or n_train)
            flops += records * (n * per.gradient + n * n * model.ntk_pair_flops(T))
    return flops


# ------------------------------------------------------------------------------------ calibration
class Calibration:
    """Rates by kind of work, each measured by its probes on first use and kept for the dry run.
    `measured` lists the rates measured since it was last emptied (for the printed plan)."""

    def __init__(self, probe: Callable[[tuple[str, ...], RunConfig], Rate] | None = None):
        self.rates: dict[tuple[str, ...], Rate] = {}
        self.measured: list[tuple[tuple[str, ...], Rate]] = []
        self.probe = probe or probe_rate

    def seconds(self, work: Work, config: RunConfig) -> float:
        """Estimated seconds of `work` (of a run of `config`, whose small versions the probe runs)."""
        if work.kind not in self.rates:
            self.rates[work.kind] = self.probe(work.kind, config)
            self.measured.append((work.kind, self.rates[work.kind]))
        return self.rates[work.kind].seconds(work)


def probe_rate(kind: tuple[str, ...], config: RunConfig) -> Rate:
    """Measure the rate of `kind` on small versions of `config`."""
    if kind[0] == "train":
        return _probe_training(config)
    if kind[0] == "labels":
        return _probe_labels(config)
    return _probe_measurement(config)


def _probe_width(config: RunConfig) -> RunConfig:
    """`config` at a width where one sample's gradient costs at most PROBE_SAMPLE_FLOPS."""
    while config.model.width > 2 and model_of(config).sample_flops(config.data.tokens).gradient > PROBE_SAMPLE_FLOPS:
        config = config.model_copy(update={"model": config.model.with_width(max(2, config.model.width // 4 * 2))})
    return config


def _probe_sizes(at: Callable[[int], RunConfig], flops_of: Callable[[RunConfig], float],
                 target: float) -> tuple[RunConfig, RunConfig]:
    """The two probe configs at(n_train): the smaller on PROBE_SMALL_SAMPLES samples (mostly
    overhead), the larger with about `target` FLOPs of work (mostly arithmetic)."""
    n = int(min(8192, max(8 * PROBE_SMALL_SAMPLES, target / max(1.0, flops_of(at(1))))))
    return at(PROBE_SMALL_SAMPLES), at(n)


def _fit(points: list[tuple[Work, float]]) -> tuple[float, float]:
    """(FLOPs per second, overhead seconds per call) of seconds = calls x overhead + flops / rate
    through two (work, seconds) points of equal calls; no overhead where the line would give a
    negative one."""
    (w1, t1), (w2, t2) = points
    if w2.flops > w1.flops and t2 > t1:
        rate = (w2.flops - w1.flops) / (t2 - t1)
        if t1 - w1.flops / rate >= 0:
            return rate, (t1 - w1.flops / rate) / w1.calls
    return w2.flops / max(t2, 1e-9), 0.0


def _clock() -> tuple[float, float]:
    """(wall, CPU) seconds now, for `_elapsed`."""
    return time.perf_counter(), time.process_time()


def _elapsed(start: tuple[float, float], end: tuple[float, float]) -> float:
    """Seconds from `start` to `end` on a machine of one's own: the wall time, or the process's CPU
    time where that is less (other jobs took the cores meanwhile)."""
    return min(end[0] - start[0], end[1] - start[1])


def _timed(call: Callable[[], object]) -> float:
    start = _clock()
    call()
    return _elapsed(start, _clock())


def _probe_training(config: RunConfig) -> Rate:
    """Step seconds of PROBE_STEPS steps at two sample sizes, on random sequences of the run's T and
    d (data that costs nothing to make), validation loss every step, no recorders. Where the probes
    ran at a reduced width, PROBE_WIDE_STEPS steps on PROBE_SMALL_SAMPLES samples at the run's own
    width set the overhead per step: the trainer's passes over parameters that outgrow the caches
    (the encoder's W_H at d_m = 2048 is 168 MB) cost more than their arithmetic there."""
    from attnlab.run import train

    def at(config: RunConfig, n_train: int, steps: int = 1) -> RunConfig:
        data = RandomSequencesConfig(n=max(2, round(n_train / 0.8)), T=config.data.tokens, d=config.data.d,
                                     val_fraction=0.2)
        short = config.train.model_copy(update={"steps": steps, "record_every": 1, "reference": None})
        return config.model_copy(update={"data": data, "train": short, "diagnostics": DiagnosticsConfig()})

    def one_step(c: RunConfig) -> Work:
        per = model_of(c).sample_flops(c.data.tokens)
        return Work(("train",), 1, c.data.n_train * per.gradient + c.data.n_val * per.forward)

    narrow = _probe_width(config)
    small, large = _probe_sizes(lambda n: at(narrow, n), lambda c: one_step(c).flops, PROBE_STEP_FLOPS)
    train(at(narrow, 8))                                         # warm-up (loads compiled kernels)
    (step_small, fixed), (step_large, _) = (step_seconds(at(narrow, c.data.n_train, PROBE_STEPS))
                                            for c in (small, large))
    rate, overhead = _fit([(one_step(small), step_small), (one_step(large), step_large)])
    if narrow.model.width != config.model.width:
        wide = at(config, PROBE_SMALL_SAMPLES, PROBE_WIDE_STEPS)
        step_wide, fixed_wide = step_seconds(wide)
        overhead, fixed = max(overhead, step_wide - one_step(wide).flops / rate), max(fixed, fixed_wide)
    return Rate(rate, overhead, fixed)


def step_seconds(config: RunConfig) -> tuple[float, float]:
    """(seconds per step, seconds besides the steps) of training `config`: the median time between
    two steps, and the rest of the run's time (setup, final losses); times as `_elapsed` counts them
    (robust to a busy machine)."""
    from attnlab.run import train

    stamps: list[tuple[float, float]] = []
    start = _clock()
    train(config, progress=lambda step, loss: stamps.append(_clock()))
    total = _elapsed(start, _clock())
    intervals = sorted(_elapsed(a, b) for a, b in zip(stamps, stamps[1:]))
    per_step = intervals[len(intervals) // 2] if intervals else total / config.train.steps
    return per_step, max(0.0, total - per_step * config.train.steps)


def _probe_labels(config: RunConfig) -> Rate:
    """Seconds of the teacher's labels at two sample sizes, PROBE_DRAWS draws each."""
    from attnlab.data import build_data

    def at(n_train: int) -> RunConfig:
        return config.model_copy(update={"data": config.data.with_samples(n_train).with_draws(PROBE_DRAWS)})

    small, large = _probe_sizes(at, lambda c: label_work(c).flops, PROBE_TASK_FLOPS)
    build_data(at(8).data, 0)                                    # warm-up
    return Rate(*_fit([(label_work(c), _timed(lambda c=c: build_data(c.data, c.seed))) for c in (small, large)]))


def _probe_measurement(config: RunConfig) -> Rate:
    """Seconds of the measurement task at two sample sizes, its teacher's labels (few draws: the
    tasks do not depend on them) made beforehand, as they are cached for the runs of one data
    section and seed."""
    from attnlab.data import build_data
    from attnlab.run import measure

    config = _probe_width(config)

    def at(n_train: int) -> RunConfig:
        return config.model_copy(update={"data": config.data.with_samples(n_train).with_draws(PROBE_TASK_DRAWS)})

    small, large = _probe_sizes(at, lambda c: run_work(c).flops, PROBE_TASK_FLOPS)
    measure(at(8))                                               # warm-up
    for c in (small, large):
        build_data(c.data, c.seed)
    return Rate(*_fit([(run_work(c), _timed(lambda c=c: measure(c))) for c in (small, large)]))


# ------------------------------------------------------------------------------------- the plan
@dataclass
class ShapeGroup:
    """Runs of one series that differ only by seed: one of their configs, the experiment's x there
    (`label`: "data.L = 4"), how many runs, the estimated seconds of each, and the seconds of the
    teacher labels they make (those no earlier run of the experiment made)."""

    series: str
    label: str
    config: RunConfig
    runs: int
    seconds: float
    label_seconds: float = 0.0

    @property
    def total(self) -> float:
        return self.runs * self.seconds + self.label_seconds


@dataclass
class ExperimentPlan:
    """The runs of one experiment: to do and to reuse, the estimated seconds of those to do, their
    shape groups, and the calibrations measured for it."""

    key: str
    todo: list[RunConfig]
    reused: int
    groups: list[ShapeGroup] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(group.total for group in self.groups)


def plan_experiments(paper: str, experiments: list[str] | None, preset: str, out: str | Path = "results",
                     device: str | None = None, calibration: Calibration | None = None,
                     probe: bool = True) -> Iterator[ExperimentPlan]:
    """The plan of `attnlab reproduce PAPER` with these arguments, one experiment at a time (each
    estimated as it is yielded); nothing is written. probe: False gives no estimates."""
    declared = experiment_file(paper)
    store = open_store(Path(out) / "runs")
    calibration = calibration or Calibration()
    for key in experiments or list(declared.experiments):
        experiment = declared.experiments[key]
        series = experiment_configs(key, experiment, preset, device)
        todo = {name: [c for c in cs if not store.is_complete(c)] for name, cs in series.items()}
        item = ExperimentPlan(key, [c for cs in todo.values() for c in cs],
                              sum(len(cs) for cs in series.values()) - sum(len(cs) for cs in todo.values()))
        if probe:
            calibration.measured.clear()
            labelled: set[tuple] = set()
            for name, configs in todo.items():
                for config, seeds in _by_seedless(configs).items():
                    x = f"{experiment.x} = {flatten(config_to_dict(config)).get(experiment.x)}"
                    group = ShapeGroup(name, x, config, len(seeds), calibration.seconds(run_work(config), config))
                    labels = label_work(config)
                    if labels is not None:
                        new = {(config.data, seed) for seed in seeds} - labelled
                        labelled |= new
                        group.label_seconds = len(new) * calibration.seconds(labels, config)
                    item.groups.append(group)
            item.probes = [_probe_line(kind, rate) for kind, rate in calibration.measured]
        yield item


def plan(paper: str, experiments: list[str] | None, preset: str, out: str | Path = "results",
         device: str | None = None, probe: bool = True) -> list[ExperimentPlan]:
    """Every experiment's plan (see plan_experiments)."""
    return list(plan_experiments(paper, experiments, preset, out, device, probe=probe))


def _by_seedless(configs: list[RunConfig]) -> dict[RunConfig, list[int]]:
    """Configs by everything but the seed, with the seeds of their runs."""
    groups: dict[RunConfig, list[int]] = {}
    for config in configs:
        groups.setdefault(config.model_copy(update={"seed": 0}), []).append(config.seed)
    return groups


def _probe_line(kind: tuple[str, ...], rate: Rate) -> str:
    what, *where, threads = kind
    name = f"{where.pop(0)} training" if what == "train" else "teacher labels" if what == "labels" else what
    setting = ", ".join([*where, f"{threads} thread(s)"])
    speed = f"FLOPs at {rate.flops_per_s / 1e9:.2f} GFLOP/s"
    if what == "train":
        return f"probe {name} ({setting}): {rate.overhead_s * 1e3:.2f} ms/step + {speed}, {rate.fixed_s:.2f} s per run"
    if what == "labels":
        return f"probe {name} ({setting}): {rate.overhead_s * 1e3:.2f} ms per draw + {speed}"
    return f"probe {name} ({setting}): {rate.overhead_s:.3f} s per measurement + {speed}"


def describe_experiment(item: ExperimentPlan, workers: int) -> list[str]:
    """The printed plan of one experiment: the runs to do and reuse, the probes measured for it,
    and per series and shape the runs and their estimated time."""
    steps = sum(c.train.steps for c in item.todo if c.task == "train")
    lines = [f"  {item.key}: {len(item.todo)} runs to do ({steps} training steps), {item.reused} to reuse, "
             f"about {_duration(item.seconds / max(1, workers))}"]
    lines += [f"      {line}" for line in item.probes]
    several = len({group.series for group in item.groups}) > 1
    for group in item.groups:
        config = group.config
        what = config.model.name if config.task == "train" else f"{config.task} ({config.model.name})"
        series = f"{group.series}: " if several else ""
        labels = f" + labels {_duration(group.label_seconds)}" if group.label_seconds else ""
        lines.append(f"      {series}{group.label}: {what}, {shape_of(config)}: {group.runs} runs x "
                     f"{_duration(group.seconds)}{labels} = {_duration(group.total)}")
    return lines


def describe_total(plans: list[ExperimentPlan], workers: int) -> str:
    """The closing line: the estimated wall time on `workers` workers and the total run time."""
    total = sum(item.seconds for item in plans)
    return (f"  estimated wall time: {_duration(total / max(1, workers))} on {max(1, workers)} worker(s) "
            f"({_duration(total)} of run time)")


def describe(paper: str, preset: str, plans: list[ExperimentPlan], workers: int) -> list[str]:
    """The printed plan of a whole reproduction."""
    lines = [f"{paper} ({preset} preset): plan"]
    for item in plans:
        lines += describe_experiment(item, workers)
    return lines + [describe_total(plans, workers)]


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
