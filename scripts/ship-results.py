"""Ship the small outputs of a reproduction into docs/PRESET/PAPER/, experiment by experiment: the
experiments of the new report replace their own verdict rows, report sections, per-run tables
(EXP/results.csv) and figures (figures/EXP_*.png); the others stay as shipped before. So experiments
reproduced in different sessions (or on different machines) share one report.

    python scripts/ship-results.py arda2026 [results] [--preset paper] [--wall-time E4=5.2h ...]

docs/PRESET/PAPER/shipped.csv records, per experiment, when its report was generated, by which
attnlab commit, and the measured wall time where one is given. No run store is copied. Then the
README's verdict tables (between `<!-- verdicts: PRESET PAPER -->` and `<!-- /verdicts -->`) are
rewritten from the shipped reports, and so is the list of claims whose status differs between the
quick and the paper preset (`<!-- changes: PAPER -->`), so the README shows what docs/ holds.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SECTION = re.compile(r"^## (E\d+\w*|W\d+\w*): ", re.MULTILINE)


def split_report(text: str) -> tuple[str, dict[str, str], dict[str, str], str]:
    """(head up to the verdict rows, verdict-table rows by experiment, sections by experiment, tail
    from '## Library versions'); rows and sections keep their text exactly."""
    body, _, versions = text.partition("\n## Library versions")
    starts = [(m.start(), m.group(1)) for m in SECTION.finditer(body)]
    first = starts[0][0] if starts else len(body)
    sections = {key: body[start:end] for (start, key), (end, _) in zip(starts, starts[1:] + [(len(body), "")])}
    head, rows = [], {}
    for line in body[:first].splitlines(keepends=True):
        cells = [cell.strip() for cell in line.split("|")]
        if line.startswith("| ") and len(cells) > 2 and SECTION.match(f"## {cells[1]}: "):
            rows[cells[1]] = rows.get(cells[1], "") + line
        else:
            head.append(line)
    return "".join(head), rows, sections, "\n## Library versions" + versions if versions else ""


def merged_report(old: str, new: str, order: list[str]) -> str:
    """The new report's experiments in place of the old's, in `order` (then any others)."""
    old_head, old_rows, old_sections, _ = split_report(old)
    new_head, new_rows, new_sections, tail = split_report(new)
    rows, sections = {**old_rows, **new_rows}, {**old_sections, **new_sections}
    keys = [k for k in order if k in sections or k in rows] + sorted(set(sections) - set(order))
    head = new_head.rstrip("\n") + "\n"
    table_end = head.rfind("|---")                               # rows follow the table's rule line
    table_end = head.index("\n", table_end) + 1
    head = head[:table_end] + "".join(rows.get(k, "") for k in keys) + head[table_end:]
    body = "\n\n".join(sections[k].rstrip("\n") for k in keys if k in sections)
    return head.rstrip("\n") + "\n\n" + body + "\n" + tail


def verdict_table(report: str) -> str:
    """The verdict table of a report (header, rule and rows)."""
    head, rows, _, _ = split_report(report)
    table = [line for line in head.splitlines(keepends=True) if line.startswith("|")]
    return "".join(table) + "".join(rows.values())


def claim_key(claim: str) -> str:
    """A claim's name with the x values of a ratio or of a point ("at d_m=2048") left out (the presets
    compare different x)."""
    return re.sub(r" at (\S+)=\S+", r" at \1", re.sub(r"ratio \S+ / \S+", "ratio", claim))


def status_changes(quick: pd.DataFrame, paper: pd.DataFrame) -> str:
    """One line per claim judged in both presets with a different status."""
    statuses = {claim_key(row.claim): row.status for row in quick.itertuples()}
    lines = [f"- {row.experiment}, {row.claim}: {statuses[claim_key(row.claim)]} in the quick preset, "
             f"{row.status} at the paper's sizes ({row.measured})\n"
             for row in paper.itertuples()
             if claim_key(row.claim) in statuses and statuses[claim_key(row.claim)] != row.status]
    return "".join(lines) or "- none so far\n"


def updated_readme(readme: str, docs: Path) -> str:
    """`readme` with its verdict tables and status-change lists rewritten from the shipped reports."""
    def table(match: re.Match) -> str:
        report = docs / match.group(1) / match.group(2) / "report.md"
        body = verdict_table(report.read_text()) if report.exists() else match.group(3)
        return f"{match.group(0).split(chr(10))[0]}\n{body}<!-- /verdicts -->"

    def changes(match: re.Match) -> str:
        quick, paper = (docs / preset / match.group(1) / "report_verdicts.csv" for preset in ("quick", "paper"))
        if not (quick.exists() and paper.exists()):
            return match.group(0)
        columns = ["experiment", "claim", "measured", "status"]
        body = status_changes(read_csv(quick, columns), read_csv(paper, columns))
        return f"<!-- changes: {match.group(1)} -->\n{body}<!-- /changes -->"

    readme = re.sub(r"<!-- verdicts: (\w+) (\w+) -->\n(.*?)<!-- /verdicts -->", table, readme, flags=re.DOTALL)
    return re.sub(r"<!-- changes: (\w+) -->\n(.*?)<!-- /changes -->", changes, readme, flags=re.DOTALL)


def read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    """The table at `path` as strings (empty with `columns` where there is none)."""
    if not path.exists():
        return pd.DataFrame(columns=columns)
    return pd.read_csv(path, keep_default_na=False, dtype=str)


def experiment_order(paper: str) -> list[str]:
    from attnlab.experiments.reproduce import experiment_file

    return list(experiment_file(paper).experiments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paper")
    parser.add_argument("results", nargs="?", default="results", type=Path)
    parser.add_argument("--preset", default="paper", choices=["quick", "paper"])
    parser.add_argument("--wall-time", action="append", default=[], metavar="EXP=TIME",
                        help="the measured wall time of an experiment's reproduction, e.g. E4=5.2h")
    args = parser.parse_args()
    src, dst = args.results / args.paper / args.preset, ROOT / "docs" / args.preset / args.paper
    new_verdicts = pd.read_csv(src / "report_verdicts.csv", keep_default_na=False, dtype=str)
    keys = list(dict.fromkeys(new_verdicts["experiment"]))
    (dst / "figures").mkdir(parents=True, exist_ok=True)

    order = experiment_order(args.paper)
    rank = {key: i for i, key in enumerate(order)}
    by_order = {"key": lambda s: s.map(lambda k: rank.get(k, len(rank))), "kind": "stable"}

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    generated = re.search(r"Generated (.+?) by", (src / "report.md").read_text())
    now = generated.group(1) if generated else datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    walls = dict(item.split("=", 1) for item in args.wall_time)
    shipped = read_csv(dst / "shipped.csv", columns=["experiment", "generated", "commit", "wall_time"])
    fresh = pd.DataFrame({"experiment": keys, "generated": now, "commit": commit,
                          "wall_time": [walls.get(key, "") for key in keys]})
    shipped = pd.concat([shipped[~shipped["experiment"].isin(keys)], fresh]).sort_values("experiment", **by_order)
    shipped.to_csv(dst / "shipped.csv", index=False)

    old_md = (dst / "report.md").read_text() if (dst / "report.md").exists() else ""
    report = merged_report(old_md, (src / "report.md").read_text(), order)
    when = "; ".join(f"{row.experiment} {row.generated}" for row in shipped.itertuples())
    report = re.sub(r"^Generated .+? by (.+)$", rf"Generated experiment by experiment ({when}) by \1", report,
                    count=1, flags=re.MULTILINE)
    (dst / "report.md").write_text(report)
    old = read_csv(dst / "report_verdicts.csv", columns=list(new_verdicts.columns))
    verdicts = pd.concat([old[~old["experiment"].isin(keys)], new_verdicts]).sort_values("experiment", **by_order)
    verdicts.to_csv(dst / "report_verdicts.csv", index=False)

    for key in keys:
        for stale in (dst / "figures").glob(f"{key}_*.png"):
            stale.unlink()
        for figure in (src / "figures").glob(f"{key}_*.png"):
            shutil.copy2(figure, dst / "figures" / figure.name)
        if (src / key / "results.csv").exists():
            (dst / key).mkdir(exist_ok=True)
            shutil.copy2(src / key / "results.csv", dst / key / "results.csv")
    print(f"shipped {', '.join(keys)} into {dst.relative_to(ROOT)}")
    readme = ROOT / "README.md"
    readme.write_text(updated_readme(readme.read_text(), ROOT / "docs"))


if __name__ == "__main__":
    main()
