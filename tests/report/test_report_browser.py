"""The HTML report in a real headless Chromium: every figure decodes, the verdict table is there,
and a screenshot is not blank. Skipped when no Chromium is installed (scripts/test.sh installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from matplotlib.image import imread

from report_tables import write_runs

from attnlab.report import write_report
from attnlab.report.sweep_report import report_sweep

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome",
                                               "chrome", "headless_shell")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
         "--allow-file-access-from-files"]


def chromium(*args: str) -> str:
    done = subprocess.run([CHROMIUM, *FLAGS, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def loaded_dom(path, n_figures: int) -> str:
    """The DOM after load; asserts all n_figures images decoded and the verdict table is present."""
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", path.resolve().as_uri())
    loaded = re.search(r'data-figures-loaded="(\d+)/(\d+)"', dom)
    assert loaded, "the load check did not run"
    assert loaded.group(1) == loaded.group(2) == str(n_figures), loaded.group(0)
    assert 'id="verdict-table"' in dom
    return dom


def test_report_renders_in_headless_chromium(tmp_path, small_results):
    path = write_report(small_results, tmp_path / "out", title="Browser check")
    dom = loaded_dom(path, 2)
    assert '<tr class="inconsistent">' in dom
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,1600", path.resolve().as_uri())
    pixels = imread(shot)[..., :3]
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    not_white = (pixels < 0.9).any(axis=-1).mean()
    assert not_white > 0.02, f"screenshot is almost blank ({not_white:.2%} non-white pixels)"
    assert pixels.std() > 0.05
    # the status colours are drawn: some strongly red-tinted pixels (the inconsistent badge/row)
    red = (pixels[..., 0] - pixels[..., 1] > 0.1) & (pixels[..., 0] > 0.5)
    assert red.any()


def test_sweep_report_renders_in_headless_chromium(tmp_path):
    write_runs(tmp_path / "sweep", widths=(4, 8), seeds=(0, 1))
    path = report_sweep(tmp_path / "sweep", metrics=["best.train_loss", "average.val_loss"], n_boot=100)
    dom = loaded_dom(path, 2)
    assert "best.train_loss against m" in dom
