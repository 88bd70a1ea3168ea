"""scripts/ship-results.py merges a new reproduction into the shipped report experiment by
experiment: the new experiments replace their own rows and sections, the others stay as they were."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ship-results.py"
spec = importlib.util.spec_from_file_location("ship_results", SCRIPT)
ship = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ship)


def report(generated: str, experiments: dict[str, str]) -> str:
    rows = "".join(f"| {key} | {key} claim | p | {value} | consistent |\n" for key, value in experiments.items())
    sections = "".join(f"## {key}: title\n\nbody of {key} {value}\n\n### Results\n\n| a |\n|---|\n| 1 |\n\n"
                       for key, value in experiments.items())
    return (f"# Title: paper preset\n\nGenerated {generated} by attnlab 0.1.0.\n\n## Verdicts\n\n"
            "| Experiment | Claim | Prediction | Measured (95% interval) | Status |\n|---|---|---|---|---|\n"
            f"{rows}\n{sections}## Library versions\n\n| library | version |\n|---|---|\n| torch | {generated} |\n")


def test_new_experiments_replace_theirs_and_keep_the_others_in_paper_order():
    old = report("day 1", {"E1": "old", "E3": "old", "E4g": "old"})
    new = report("day 2", {"E4g": "new", "E2": "new"})
    merged = ship.merged_report(old, new, ["E1", "E2", "E3", "E4", "E4g"])
    assert merged == report("day 2", {"E1": "old", "E2": "new", "E3": "old", "E4g": "new"})


def test_a_report_splits_into_head_rows_sections_and_versions():
    head, rows, sections, tail = ship.split_report(report("day 1", {"E1": "x", "W2": "y"}))
    assert list(rows) == ["E1", "W2"] and rows["W2"] == "| W2 | W2 claim | p | y | consistent |\n"
    assert sections["E1"].startswith("## E1: title") and "| 1 |" in sections["E1"]
    assert "## Verdicts" in head and "E1" not in head
    assert tail.startswith("\n## Library versions") and "day 1" in tail


def test_the_readme_tables_and_status_changes_follow_the_shipped_reports(tmp_path):
    for preset, status in (("quick", "inconclusive"), ("paper", "consistent")):
        folder = tmp_path / preset / "arda2026"
        folder.mkdir(parents=True)
        (folder / "report.md").write_text(report(preset, {"E1": f"{preset} value"}))
        (folder / "report_verdicts.csv").write_text(
            "experiment,claim,measured,status\n"
            f"E1,E1 claim,{preset} value,{status}\n"
            f"E8,E8 ratio L=255 / L=3,1x,{'consistent' if preset == 'quick' else 'INCONSISTENT'}\n"
            f"E8,E8 accuracy at L=255 (series=a),1,{'consistent' if preset == 'quick' else 'INCONSISTENT'}\n"
            .replace("L=255", "L=511" if preset == "paper" else "L=255")
            .replace("L=511 / L=3", "L=511 / L=1"))
    readme = ("intro\n<!-- verdicts: paper arda2026 -->\nstale\n<!-- /verdicts -->\nmiddle\n"
              "<!-- changes: arda2026 -->\n<!-- /changes -->\n<!-- verdicts: paper wu2023 -->\nkept\n<!-- /verdicts -->\n")
    updated = ship.updated_readme(readme, tmp_path)
    assert "stale" not in updated and "| E1 | E1 claim | p | paper value | consistent |\n<!-- /verdicts -->" in updated
    assert "- E1, E1 claim: inconclusive in the quick preset, consistent at the paper's sizes (paper value)\n" in updated
    assert "- E8, E8 ratio L=511 / L=1: consistent in the quick preset, INCONSISTENT at the paper's sizes" in updated
    assert "- E8, E8 accuracy at L=511 (series=a): consistent in the quick preset, INCONSISTENT at" in updated
    assert "<!-- verdicts: paper wu2023 -->\nkept\n<!-- /verdicts -->" in updated      # nothing shipped yet
    assert ship.updated_readme(updated, tmp_path) == updated
