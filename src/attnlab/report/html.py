"""The report: one self-contained HTML file (figures embedded, inline CSS) plus a Markdown summary.

It opens with the verdict table (every claim, its prediction, the measured value with its 95%
interval and the status, colour-coded; inconsistent claims are shown like any other), then one
section per experiment: verdicts, figures, the results table, the config and the command to rerun it.
The footer records library versions. Both files are written atomically.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
import mimetypes
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from attnlab.report.result import ExperimentResult
from attnlab.report.verdict import Status, Verdict
from attnlab.store import atomic_write_text
from attnlab.versions import library_versions

MAX_TABLE_ROWS = 500
STATUS_ORDER = (Status.INCONSISTENT, Status.INCONCLUSIVE, Status.CONSISTENT, Status.MEASURED)


def write_report(results: list[ExperimentResult], out_dir: str | Path, title: str, name: str = "report",
                 versions: dict[str, str] | None = None) -> Path:
    """Write OUT_DIR/NAME.html (self-contained), OUT_DIR/NAME.md and OUT_DIR/NAME_verdicts.csv (one row
    per verdict, for scripts and the README); return the HTML path.

    Figures must be existing image files (PNG, JPEG or SVG); they are embedded as data URIs in the
    HTML and referenced by relative path in the Markdown.
    """
    out_dir = Path(out_dir)
    keys = [r.key for r in results]
    if len(set(keys)) != len(keys):
        raise ValueError(f"experiment keys must be unique; got {keys}")
    for result in results:
        for figure in result.figures:
            if not Path(figure).is_file():
                raise FileNotFoundError(f"experiment {result.key}: figure {figure} does not exist")
    versions = versions if versions is not None else library_versions()
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / f"{name}.html"
    atomic_write_text(html_path, render_html(results, title, versions, generated))
    atomic_write_text(out_dir / f"{name}.md", render_markdown(results, title, versions, generated, out_dir))
    atomic_write_text(out_dir / f"{name}_verdicts.csv", verdict_frame(results).to_csv(index=False))
    return html_path


# ----------------------------------------------------------------------------------------- HTML

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1f;
       max-width: 1100px; margin: 2em auto; padding: 0 1.5em; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin-bottom: 0.3em; }
.meta, .paper { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f6; }
table.data td { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.scroll { max-height: 28em; overflow: auto; display: inline-block; max-width: 100%; }
.status { font-weight: 600; white-space: nowrap; border-radius: 3px; padding: 0.1em 0.5em; }
.consistent { background: #dff3e4; color: #14632f; }
.inconsistent { background: #fbdcdc; color: #9b1c1c; }
.inconclusive { background: #fdf0d0; color: #7a5200; }
.measured { background: #e8eef7; color: #2a4a7a; }
tr.inconsistent td { background: #fff4f4; }
.counts span { margin-right: 0.8em; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; }
figure img { max-width: 100%; width: 520px; border: 1px solid #eee; }
figcaption { font-size: 0.8em; color: #666; }
pre { background: #f6f8fa; padding: 0.7em; overflow-x: auto; font-size: 0.82em; border-radius: 4px; }
ul.verdicts { padding-left: 1.2em; }
footer { margin-top: 3em; border-top: 1px solid #ddd; color: #666; font-size: 0.8em; }
footer table { font-size: 1em; }
"""


# After load, <body data-figures-loaded="k/n"> counts the figures that decoded (for browser checks).
LOAD_CHECK = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-figures-loaded", ok + "/" + images.length);
});
</script>"""


def render_html(results: list[ExperimentResult], title: str, versions: dict[str, str],
                generated: str) -> str:
    """The whole report as one HTML document (no external resources)."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">Generated {esc(generated)} by attnlab {esc(versions.get("attnlab", ""))}.</p>',
        '<h2 id="verdicts">Verdicts</h2>',
        _counts_html(results),
        _verdict_table_html(results),
    ]
    for result in results:
        parts.append(_section_html(result))
    parts.append(_footer_html(versions))
    parts.append(LOAD_CHECK)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _counts_html(results: list[ExperimentResult]) -> str:
    counts = Counter(v.status for r in results for v in r.verdicts)
    spans = [f'<span class="status {s}">{counts[s]} {s}</span>' for s in STATUS_ORDER if counts[s]]
    return f'<p class="counts">{"".join(spans) or "No claims judged."}</p>'


def _verdict_table_html(results: list[ExperimentResult]) -> str:
    esc = html.escape
    rows = ['<table class="verdicts" id="verdict-table"><thead><tr><th>Experiment</th><th>Claim</th>'
            "<th>Prediction</th><th>Measured (95% interval)</th><th>Status</th></tr></thead><tbody>"]
    for result in results:
        for v in result.verdicts:
            status = f'<span class="status {v.status}">{esc(v.status)}</span>'
            if v.status == Status.INCONCLUSIVE and v.reason:
                status += f'<br><small>{esc(v.reason)}</small>'
            rows.append(f'<tr class="{v.status}"><td><a href="#{_anchor(result.key)}">{esc(result.key)}</a></td>'
                        f"<td>{esc(v.claim)}</td><td>{esc(v.prediction)}</td><td>{esc(v.measured)}</td>"
                        f"<td>{status}</td></tr>")
    rows.append("</tbody></table>")
    return "".join(rows)


def _section_html(result: ExperimentResult) -> str:
    esc = html.escape
    parts = [f'<section id="{_anchor(result.key)}">',
             f"<h2>{esc(result.key)}: {esc(result.title)}</h2>"]
    if result.paper:
        parts.append(f'<p class="paper">{esc(result.paper)}</p>')
    if result.claim:
        parts.append(f'<p class="claim"><strong>Claim.</strong> {esc(result.claim)}</p>')
    if result.verdicts:
        items = "".join(f'<li><span class="status {v.status}">{esc(v.status)}</span> {esc(v.text)}</li>'
                        for v in result.verdicts)
        parts.append(f'<ul class="verdicts">{items}</ul>')
    if result.notes:
        parts.append(f"<p>{esc(result.notes)}</p>")
    for figure in result.figures:
        figure = Path(figure)
        parts.append(f'<figure><img src="{_data_uri(figure)}" alt="{esc(result.key)}: {esc(figure.stem)}">'
                     f"<figcaption>{esc(figure.name)}</figcaption></figure>")
    parts.append("<h3>Results</h3>")
    parts.append(_table_html(result.table))
    parts.append("<h3>Config</h3>")
    parts.append(f"<pre><code>{esc(config_yaml(result.config))}</code></pre>")
    parts.append("<h3>Command</h3>")
    parts.append(f"<pre><code>{esc(result.command)}</code></pre>")
    parts.append("</section>")
    return "\n".join(parts)


def _table_html(table: pd.DataFrame) -> str:
    if table.empty:
        return "<p>No rows.</p>"
    shown = rounded(table.head(MAX_TABLE_ROWS))
    note = (f"<p class='meta'>First {MAX_TABLE_ROWS} of {len(table)} rows.</p>"
            if len(table) > MAX_TABLE_ROWS else "")
    return f'<div class="scroll">{shown.to_html(index=False, classes="data", border=0, na_rep="—")}</div>{note}'


def _footer_html(versions: dict[str, str]) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in versions.items())
    return f'<footer><h3>Library versions</h3><table class="versions">{rows}</table></footer>'


def _anchor(key: str) -> str:
    return "exp-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in key)


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if not mime.startswith("image/"):
        raise ValueError(f"figure {path}: {mime} is not an image; use PNG, JPEG or SVG")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


# ------------------------------------------------------------------------------------- helpers


def rounded(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """A copy with float columns shown to `digits` significant digits (as strings)."""
    out = table.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            out[column] = [_sig(v, digits) for v in out[column]]
    return out


def _sig(value: float, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}g}"


def config_yaml(config: dict) -> str:
    """The config as YAML (numpy scalars, paths and tuples made plain)."""
    return yaml.safe_dump(_plain(config), sort_keys=False, default_flow_style=False, width=100)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "model_dump"):
        return _plain(value.model_dump())
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


# ------------------------------------------------------------------------------------- Markdown


def render_markdown(results: list[ExperimentResult], title: str, versions: dict[str, str],
                    generated: str, out_dir: Path) -> str:
    """The Markdown summary: verdict table, then per experiment its verdicts, figures, table,
    config and command; figures are linked relative to out_dir."""
    lines = [f"# {_md_text(title)}", "", f"Generated {generated} by attnlab {versions.get('attnlab', '')}.", "",
             "## Verdicts", ""]
    lines.append(verdict_markdown(results))
    for result in results:
        lines += ["", _md_text(f"## {result.key}: {result.title}"), ""]
        if result.paper:
            lines += [_md_text(f"*{result.paper}*"), ""]
        if result.claim:
            lines += [_md_text(f"**Claim.** {result.claim}"), ""]
        lines += [_md_text(f"- {_md_status(v)}: {v.text}") for v in result.verdicts]
        if result.notes:
            lines += ["", _md_text(result.notes)]
        for figure in result.figures:
            rel = os.path.relpath(Path(figure).resolve(), out_dir.resolve())
            lines += ["", f"![{result.key}: {Path(figure).stem}]({Path(rel).as_posix()})"]
            pdf = Path(figure).with_suffix(".pdf")
            if pdf.is_file():
                lines += ["", f"[PDF]({Path(rel).with_suffix('.pdf').as_posix()})"]
        lines += ["", "### Results", ""]
        table = rounded(result.table.head(MAX_TABLE_ROWS))
        lines += _md_table([str(c) for c in table.columns], table.astype(object).values.tolist()) \
            if not table.empty else ["No rows."]
        lines += ["", "### Config", "", "```yaml", config_yaml(result.config).rstrip(), "```",
                  "", "### Command", "", "```bash", result.command, "```"]
    lines += ["", "## Library versions", ""]
    lines += _md_table(["library", "version"], [[k, v] for k, v in versions.items()])
    return "\n".join(lines) + "\n"


def verdict_markdown(results: list[ExperimentResult]) -> str:
    """The verdict table alone, as Markdown (e.g. for a README)."""
    rows = [[r.key, v.claim, v.prediction, v.measured, _md_status(v)] for r in results for v in r.verdicts]
    if not rows:
        return "No claims judged."
    return "\n".join(_md_table(["Experiment", "Claim", "Prediction", "Measured (95% interval)", "Status"], rows))


def verdict_frame(results: list[ExperimentResult]) -> pd.DataFrame:
    """One row per verdict: experiment, claim, prediction, measured, status, estimate, ci_low, ci_high,
    reason, text (what NAME_verdicts.csv holds)."""
    columns = ["experiment", "claim", "prediction", "measured", "status", "estimate", "ci_low", "ci_high",
               "reason", "text"]
    return pd.DataFrame([{"experiment": r.key, **v.to_dict()} for r in results for v in r.verdicts],
                        columns=columns)


def _md_status(v: Verdict) -> str:
    return f"**{v.status.value.upper()}**" if v.status == Status.INCONSISTENT else v.status.value


def _md_text(text: str) -> str:
    """Markdown text with every HTML tag opening (`<` before a letter, '/', '!' or '?') escaped, so a
    user's string shows as written and never runs as HTML; other text (m <= 1) is kept as it is."""
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)


def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        text = "—" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
        return _md_text(text).replace("|", "\\|").replace("\n", " ")
    out = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return out
