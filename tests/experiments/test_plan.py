"""`attnlab reproduce --dry-run`: the plan of a reproduction, with nothing run or written."""

import yaml
from typer.testing import CliRunner

from attnlab.cli import app
from attnlab.experiments.plan import describe, plan, shape_of
from attnlab.experiments.reproduce import experiment_configs, experiment_file, reproduce

from tests.experiments.test_reproduce import TINY


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["reproduce", str(path), "--out", str(out), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "A1: 9 runs to do (0 training steps), 0 to reuse" in result.output
    assert "A2: 12 runs to do (60 training steps), 0 to reuse" in result.output
    assert "ms/step" in result.output and "s per measurement" in result.output
    assert "estimated wall time" in result.output
    assert not out.exists()


def test_the_plan_counts_finished_runs_as_reused(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    reproduce(str(path), ["A1"], out=tmp_path, progress=False)
    plans = plan(str(path), None, "quick", tmp_path)
    assert [(p.key, len(p.todo), p.reused) for p in plans] == [("A1", 0, 9), ("A2", 12, 0)]
    assert plans[0].seconds == 0 and plans[1].seconds > 0
    lines = describe("tiny", "quick", plans, workers=2)
    assert "A1: 0 runs to do (0 training steps), 9 to reuse" in lines[1]


def test_run_size_grows_with_samples_length_and_width():
    experiment = experiment_file("arda2026").experiments["E3"]
    configs = [c for cs in experiment_configs("E3", experiment, "paper").values() for c in cs]
    sizes = sorted({shape.n_train * shape.T * shape.width for shape in map(shape_of, configs)})
    assert sizes[0] == 4000 * 16 * 8 and sizes[-1] == 4000 * 16 * 256


# ------------------------------------------------------------------------------ the cost model
import time

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import attnlab.experiments.plan as plan_module
from attnlab.config import parse_config
from attnlab.experiments.plan import Calibration, Rate, model_of, probe_rate, run_work, step_seconds
from attnlab.models import IndRNN, KernelTransformer, ShallowEncoder
from attnlab.sweep.tasks import torch_threads

FAMILIES = {
    "kernel-transformer": ({"name": "kernel-transformer", "m": 16}, {"T": 16, "d": 8}),
    "indrnn": ({"name": "indrnn", "m": 32}, {"T": 24, "d": 17}),
    "shallow-encoder": ({"name": "shallow-encoder", "d_m": 32}, {"T": 10, "d": 100}),
}


def _training(model: dict, data: dict, n: int, steps: int = 12) -> "RunConfig":
    return parse_config({"model": model, "data": {"name": "random-sequences", "n": n, "val_fraction": 0.2, **data},
                         "train": {"method": "gd" if model["name"] == "shallow-encoder" else "projgd",
                                   "lr": 0.01, "radius": 3, "steps": steps, "record_every": 1}})


@pytest.mark.parametrize("family", FAMILIES)
def test_the_cost_model_predicts_measured_steps_within_2x(family):
    """Calibrated once by its probes, the FLOP count gives the step time of two other sizes (another
    sample count and width) to within a factor 2 (one torch thread: the machine is shared)."""
    model, data = FAMILIES[family]
    with torch_threads(1):
        rate = probe_rate(("train",), _training(model, data, 64))
        for n, scale in ((150, 1), (1200, 2)):
            width_field = "d_m" if family == "shallow-encoder" else "m"
            config = _training({**model, width_field: model[width_field] * scale}, data, n)
            measured, _ = step_seconds(config)
            per = model_of(config).sample_flops(config.data.tokens)
            flops = config.data.n_train * per.gradient + config.data.n_val * per.forward
            predicted = rate.overhead_s + flops / rate.flops_per_s
            assert 0.5 < predicted / measured < 2.0, (family, n, predicted, measured, rate)


def test_a_run_wider_than_the_rate_probes_gets_its_step_overhead_at_its_own_width(monkeypatch):
    """Probes narrowed to d_m = 32 keep the encoder's parameters in cache; the probe at the run's own
    width (d_m = 512, few samples) must set the per-step cost there to within a factor 2."""
    monkeypatch.setattr(plan_module, "PROBE_SAMPLE_FLOPS", 5e5)
    config = _training({"name": "shallow-encoder", "d_m": 512}, {"T": 10, "d": 100}, 20)
    assert plan_module._probe_width(config).model.width <= 32
    with torch_threads(1):
        rate = probe_rate(("train",), config)
        measured, _ = step_seconds(config)
    per = model_of(config).sample_flops(config.data.tokens)
    predicted = rate.overhead_s + (config.data.n_train * per.gradient + config.data.n_val * per.forward) / rate.flops_per_s
    assert 0.5 < predicted / measured < 2.0, (predicted, measured, rate)


@pytest.mark.parametrize("model, T, backward_counted", [
    (KernelTransformer(d=8, m=6, fused=False), 12, True),
    (IndRNN(d=17, m=6, fused=False), 12, False),   # its backward accumulates with addmm_, which torch does not count
    (ShallowEncoder(d=20, T=6, d_m=16), 6, True),
    (ShallowEncoder(d=20, T=6, d_m=16, phi="mean", outputs=10), 6, True)])
def test_sample_flops_match_the_multiplications_torch_counts(model, T, backward_counted):
    """The written-out FLOP counts against torch's count of the matrix products of a forward pass
    and of a loss gradient (elementwise work, which torch does not count, is a small share)."""
    params = model.init(0, dtype=torch.float64)
    B = 5
    X = torch.randn(B, T, model.d, dtype=torch.float64)
    y = torch.randn(B, dtype=torch.float64) if model.name != "shallow-encoder" or model.outputs == 1 \
        else torch.randn(B, model.outputs, dtype=torch.float64)
    counted = {}
    for name, call in (("forward", lambda: model(params, X)), ("gradient", lambda: model.loss_and_grad(params, X, y))):
        with FlopCounterMode(display=False) as counter:
            call()
        counted[name] = counter.get_total_flops() / B
    flops = model.sample_flops(T)
    assert 0.7 < flops.forward / counted["forward"] < 1.5
    if backward_counted:
        assert 0.7 < flops.gradient / counted["gradient"] < 1.5
    else:
        assert flops.gradient == 2 * flops.forward


def test_the_paper_dry_run_streams_real_shapes_quickly(tmp_path, monkeypatch):
    """The whole paper preset of both papers (probes replaced by a fixed rate): every experiment and
    its shapes, with T = L + 1 for E4 and the digits' patch count for W5, in seconds."""
    monkeypatch.setattr(plan_module, "probe_rate", lambda kind, config: Rate(1e9, 1e-3, 0.1))
    start = time.perf_counter()
    result = CliRunner().invoke(app, ["reproduce", "all", "--preset", "paper", "--dry-run", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - start < 30
    output = result.output
    assert "None" not in output
    for L in (4, 16, 72, 96):
        assert f"data.L = {L}: indrnn, n_train 4000, T {L + 1}, d 17, width 64, 5000 steps: 20 runs x" in output
    assert "model.d_m = 64: shallow-encoder, n_train 1000, T 4, d 16, width 64, 1000 steps" in output
    assert "model.m = 256: kernel-transformer, n_train 4000, T 16, d 8, width 256, 4000 steps: 10 runs" in output
    keys = [line.split(":")[0].strip() for line in output.splitlines() if line.startswith("  ") and "runs to do" in line]
    assert keys == ["E1", "E2", "E3", "E4", "E4g", "E5", "E6", "E7", "E8", "W1", "W2", "W3", "W4", "W5"]
    assert output.count("estimated wall time") == 2


def test_each_kind_of_work_is_probed_once_and_teacher_labels_once_per_data_and_seed(tmp_path):
    probed = []

    def probe(kind, config):
        probed.append(kind)
        return Rate(1e9, 0.0)

    calibration = Calibration(probe)
    plans = list(plan_module.plan_experiments("arda2026", ["E1", "E3"], "paper", tmp_path, calibration=calibration))
    assert len(set(probed)) == len(probed)                       # each kind once; training per T and width
    assert sorted(kind[0] for kind in probed) == ["approximation-error", "labels"] + ["train"] * 6   # E3's widths
    e1, e3 = plans
    labelled = [group for group in e1.groups if group.label_seconds]   # first width of each series: 10 seeds
    assert [group.label for group in labelled] == ["model.m = 8", "model.m = 8"]
    labels = plan_module.label_work(e1.groups[0].config)
    assert labelled[0].label_seconds == pytest.approx(10 * labels.flops / 1e9)
    one = run_work(e3.groups[0].config)
    assert one.calls == 4000 and e3.groups[0].seconds == pytest.approx(one.flops / 1e9)
