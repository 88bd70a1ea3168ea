"""Issue 16, part 3: one source of constraints. The CLI's config flags are generated from the
config's fields and Literals, the teacher follows the student's activation for every entry point,
and the model and data registries serve every config class."""

from __future__ import annotations

import pytest
import torch
import typer
import typer.main
import yaml
from typer.testing import CliRunner

from attnlab.cli import NTK_FLAGS, TRAIN_FLAGS, app
from attnlab.config import (ConfigError, DataConfig, IndRNNConfig, KernelTransformerConfig, ModelConfig, RunConfig,
                            TeacherDataConfig, describe_field, load_config, parse_config)
from attnlab.data import GENERATORS, build_data
from attnlab.models import MODELS, build_model
from attnlab.sweep.grid import expand, parse_sweep


def members(union):
    return [cls for cls in union.__args__[0].__args__]


CHOICE_FLAGS = [(command, flag, field) for command, flags in (("train", TRAIN_FLAGS), ("ntk", NTK_FLAGS))
                for flag, field in flags.items() if describe_field(field).choices]


def test_choices_are_read_off_the_literals():
    assert describe_field("model.name").choices == tuple(c.model_fields["name"].default for c in members(ModelConfig))
    assert describe_field("data.name").choices == tuple(c.model_fields["name"].default for c in members(DataConfig))
    assert describe_field("model.activation").choices == ("tanh", "erf")
    assert describe_field("model.activation").sections == ("kernel-transformer", "indrnn")
    assert describe_field("train.method").choices == ("gd", "projgd", "projsgd")
    assert describe_field("train.radius").choices == ("none",) and float in describe_field("train.radius").kinds
    assert "Monte-Carlo" in describe_field("data.K").help
    with pytest.raises(KeyError):
        describe_field("model.width")


def generated_options(command):
    params = typer.main.get_command(app).commands[command].params
    return {opt: p for p in params for opt in p.opts}


def test_every_flag_is_generated_with_its_fields_choices_and_help():
    for command, flags in (("train", TRAIN_FLAGS), ("ntk", NTK_FLAGS)):
        options = generated_options(command)
        for flag, field in flags.items():
            facts, option = describe_field(field), options[f"--{flag}"]
            assert field in option.help and facts.help in option.help
            assert all(str(choice) in option.metavar for choice in facts.choices)
        help_text = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "300"}).output
        assert all(f"--{flag}" in help_text for flag in flags)


def _stop_after_resolving(monkeypatch):
    """Make the commands stop right after their config is resolved; return the resolved configs."""
    import attnlab.cli as cli

    seen, resolve = [], cli.resolve_config

    def resolved(*args):
        seen.append(resolve(*args))
        raise typer.Exit(0)
    monkeypatch.setattr(cli, "resolve_config", resolved)
    return seen


def _field(config, field):
    for part in field.split("."):
        config = getattr(config, part)
    return config


@pytest.mark.parametrize("command, flag, field", CHOICE_FLAGS)
def test_every_literal_value_is_accepted_and_others_exit_2_naming_the_field(monkeypatch, tmp_path, command, flag,
                                                                           field):
    seen = _stop_after_resolving(monkeypatch)
    for value in describe_field(field).choices:
        extra = ["--set", "data.path=/nowhere"] if value == "mnist" else []
        result = CliRunner().invoke(app, [command, f"--{flag}", str(value), *extra, "--out", str(tmp_path)])
        assert result.exit_code == 0, result.output
        got = _field(seen.pop(), field)
        assert all(v == value for v in got.model_dump().values()) if hasattr(got, "model_dump") else got == value
    bad = CliRunner().invoke(app, [command, f"--{flag}", "no-such-value", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and not seen
    (line,) = bad.output.strip().splitlines()
    assert line.startswith(f"error: invalid config: {field}") and " = 'no-such-value': " in line   # radius: .c, ...


def test_numeric_flags_reach_the_config_typed(monkeypatch):
    seen = _stop_after_resolving(monkeypatch)
    result = CliRunner().invoke(app, ["train", "--model", "indrnn", "--m", "6", "--gain", "1.25", "--lr", "0.5",
                                      "--radius", "none", "--batch-size", "3", "--record-every", "2",
                                      "--data", "series:sunspots", "--L", "3"])
    assert result.exit_code == 0, result.output
    (config,) = seen
    assert (config.model.m, config.model.gain, config.train.lr, config.train.batch_size) == (6, 1.25, 0.5, 3)
    assert config.train.radius.c == "none" and config.data.recording == "sunspots" and config.data.L == 3


# ----------------------------------------------------------------------------------- coupling
def test_teacher_follows_the_student_activation_in_python_yaml_sweeps_and_the_cli(tmp_path):
    python = RunConfig(model=KernelTransformerConfig(activation="erf"))
    assert python.data.activation == "erf"
    assert RunConfig(model=IndRNNConfig(activation="erf"), data=TeacherDataConfig(n=40)).data.activation == "erf"
    assert parse_config({"model": {"activation": "erf"}}).data.activation == "erf"
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"model": {"activation": "erf"}, "data": {"n": 40}}))
    assert load_config(path).data.activation == "erf"
    (swept,) = expand(parse_sweep({"base": {"model": {"activation": "erf"}}}))
    assert swept.data.activation == "erf"
    import attnlab.cli as cli

    assert cli.resolve_config(None, {"model.activation": "erf"}, []) == parse_config({"model": {"activation": "erf"}})
    assert cli.resolve_config(path, {}, []).data.activation == "erf"


def test_an_explicit_teacher_activation_is_kept():
    assert RunConfig(model=KernelTransformerConfig(activation="erf"),
                     data=TeacherDataConfig(activation="tanh")).data.activation == "tanh"
    assert parse_config({"model": {"activation": "erf"}, "data": {"activation": "tanh"}}).data.activation == "tanh"
    assert parse_config({"model": "shallow-encoder", "data": {"activation": "erf"}}).data.activation == "erf"
    with pytest.raises(ConfigError, match="model.activation = 'erf': unknown field"):
        parse_config({"model": {"name": "shallow-encoder", "activation": "erf"}})


def test_the_cli_and_python_give_the_same_run(tmp_path):
    args = ["train", "--activation", "erf", "--m", "4", "--n", "40", "--K", "64", "--T", "4", "--d", "3",
            "--steps", "3", "--quiet", "--out", str(tmp_path)]
    assert CliRunner().invoke(app, args).exit_code == 0
    config = parse_config({"model": {"m": 4, "activation": "erf"}, "data": {"n": 40, "K": 64, "T": 4, "d": 3},
                           "train": {"steps": 3}})
    from attnlab.run import open_store

    assert open_store(tmp_path).is_complete(config)


# ---------------------------------------------------------------------------------- registries
def test_every_model_config_has_a_registered_model():
    for cls in members(ModelConfig):
        config = cls() if cls.__name__ != "ShallowEncoderConfig" else cls(d_m=8)
        model = build_model(config, d=3, T=4, outputs=1)
        assert type(model) is MODELS[config.name] and model.name == config.name
        assert model.width == config.width
        params = model.init(0, dtype=torch.float64)
        assert model(params, torch.randn(2, 4, 3, dtype=torch.float64)).shape == (2,)
    assert set(MODELS) == {cls.model_fields["name"].default for cls in members(ModelConfig)}


def test_every_data_config_has_a_generator_and_its_shapes_match_the_properties():
    assert set(GENERATORS) == {cls.model_fields["name"].default for cls in members(DataConfig)}
    for raw in ({"name": "teacher", "n": 20, "K": 16, "T": 3, "d": 2}, {"name": "random-sequences", "n": 10},
                {"name": "digits", "n": 10, "n_val": 5}, {"name": "digits", "n": 10, "patch": "rows"},
                {"name": "ar-lag", "L": 3, "n": 50}, {"name": "ar-lag", "L": 3, "n": 50, "context": "fixed", "T": 6},
                {"name": "series", "recording": "sunspots", "n": 40}):
        config = parse_config({"data": raw, "model": "shallow-encoder"}).data
        data = build_data(config, 0)
        assert data.X_train.shape[1:] == (config.tokens, config.d), raw
        assert data.X_train.shape[0] == config.n_train, raw
        assert data.X_train.shape[0] + data.X_val.shape[0] == config.n_samples, raw
        assert data.X_val.shape[0] == config.n_val and data.outputs == config.outputs, raw
        smaller = config.with_samples(4)
        assert type(smaller) is type(config) and 1 <= smaller.n_train <= 5, raw
        changed = {k for k, v in smaller.model_dump().items() if v != config.model_dump()[k]}
        assert changed <= {"n", "n_val"}, raw


def test_model_sections_change_width_through_their_own_field():
    for cls in members(ModelConfig):
        config = cls()
        wider = config.with_width(2 * config.width)
        assert wider.width == 2 * config.width and type(wider) is cls
        assert wider.model_copy(update={cls.WIDTH_FIELD: config.width}) == config
    with pytest.raises(ValueError, match="even"):
        KernelTransformerConfig().with_width(3)   # validated: paired initialisation needs an even width
