"""scripts/pack-runs.py keeps whole curves where a claim is fitted on them, and thins them elsewhere."""

import importlib.util
from pathlib import Path

from attnlab.experiments.reproduce import experiment_file

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pack-runs.py"
spec = importlib.util.spec_from_file_location("pack_runs", SCRIPT)
pack_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pack_runs)


def test_curves_stay_whole_where_a_claim_is_fitted_on_them():
    wu = experiment_file("wu2023").experiments
    assert pack_runs.kept_every(wu["W1"], 50) == 1     # training loss against the step
    assert pack_runs.kept_every(wu["W2"], 50) == 1


def test_curves_are_thinned_where_every_claim_reads_summaries():
    arda = experiment_file("arda2026").experiments
    assert pack_runs.kept_every(arda["E4"], 50) == 50  # block maxima are in the summaries
    assert pack_runs.kept_every(experiment_file("wu2023").experiments["W3"], 20) == 20
