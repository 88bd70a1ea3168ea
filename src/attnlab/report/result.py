"""What the report shows of one experiment: its table, verdicts, figures and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from attnlab.report.verdict import Verdict


@dataclass
class ExperimentResult:
    """Everything the report shows of one experiment.

    key: short id ("E1"), used in the verdict table and as the section anchor; title: one line;
    claim: the paper's statement being tested; paper: the source (e.g. "Arda et al. 2026, Thm 1");
    table: the tidy results (one row per run or per x value); figures: PNG/JPEG/SVG paths (a PDF
    beside a PNG of the same stem is linked from the Markdown); verdicts: judged claims, in order;
    config: the config that produced it (a dict, or anything with model_dump); command: how to rerun.
    """

    key: str
    title: str
    table: pd.DataFrame
    verdicts: list[Verdict] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    config: Any = field(default_factory=dict)
    command: str = ""
    claim: str = ""
    paper: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.table, pd.DataFrame):
            raise TypeError(f"experiment {self.key}: table is a {type(self.table).__name__}; expected a pandas DataFrame")
        self.figures = [Path(f) for f in self.figures]
        self.verdicts = list(self.verdicts)
        for v in self.verdicts:
            if not isinstance(v, Verdict):
                raise TypeError(f"experiment {self.key}: verdicts must be Verdict objects (from judge, "
                                f"judge_sign, judge_order, interval_verdict or measurement); got {type(v).__name__}")
