"""What the CLI tests share: a tiny experiment file, the CLI runner and the one-line-error check."""

from __future__ import annotations

from typer.testing import CliRunner

from attnlab.cli import app


def tiny_experiments(widths=(4, 16), seeds: int = 1) -> dict:
    """An experiment file (as a mapping) with one cheap experiment A1: approximation error against
    model.m over `widths`, `seeds` seeds in its quick preset."""
    return {
        "paper": "test", "title": "Tiny",
        "experiments": {"A1": {
            "title": "approximation error against width", "claim": "falls like m^-1/2",
            "base": {"task": "approximation-error", "dtype": "float64",
                     "data": {"n": 60, "T": 4, "d": 3, "K": 256, "anchors": 4}},
            "x": "model.m",
            "claims": [{"metric": "approximation_error", "quantity": "approximation error", "predicted": -0.5}],
            "presets": {"quick": {"axes": {"model.m": list(widths)}, "seeds": seeds}},
        }},
    }


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result, code: int = 2) -> str:
    """The result exited with `code` after one 'error:' line and no traceback; returns that line."""
    assert result.exit_code == code, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]
