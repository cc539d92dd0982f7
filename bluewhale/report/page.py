"""The report as one self-contained HTML page: styles, charts (inline SVG) and a few lines of script
inline, nothing fetched, so it opens anywhere and can be mailed or logged as a single file."""

from __future__ import annotations

import datetime as dt
import html

from bluewhale.metrics import METRICS
from bluewhale.report import plots
from bluewhale.report.runs import Selection

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; font-size: 13px; } th, td { padding: 3px 8px; border-bottom: 1px solid #ddd; }
th { text-align: left; background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.run { max-width: 320px; } td.best { font-weight: bold; background: #e6f4ea; } .sw { display: inline-block; width: 10px; height: 10px; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; } figure { margin: 0; }
.charts svg { width: 640px; height: auto; }
.note { color: #666; font-size: 12px; }
"""

# marks each metric column's best value (the direction is on the header), once the page has loaded
SCRIPT = """
document.querySelectorAll("table.metrics th[data-better]").forEach(function (th) {
  var col = th.cellIndex, sign = th.dataset.better === "higher" ? 1 : -1, best = null;
  var cells = Array.from(document.querySelectorAll("table.metrics tbody tr")).map(function (tr) {
    return tr.cells[col];
  }).filter(function (td) { return td && td.dataset.value !== undefined; });
  cells.forEach(function (td) { var v = sign * parseFloat(td.dataset.value); if (best === null || v > best) best = v; });
  cells.forEach(function (td) { if (sign * parseFloat(td.dataset.value) === best) td.classList.add("best"); });
});
document.body.dataset.ready = "true";
"""


def higher_is_better(name: str) -> bool:
    """Direction of a logged metric: `<split>_<metric>[_<task>]` as bluewhale.metrics says; else losses
    and times are lower-is-better and the rest higher."""
    for part in name.split("_"):
        if part in METRICS:
            return METRICS[part].higher_is_better
    return not any(word in name for word in ("loss", "time", "_s"))


def _breakable(name: str) -> str:
    """A metric name that may wrap after its underscores (narrow columns)."""
    return html.escape(name).replace("_", "_<wbr>")


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"


def _metrics_table(sel: Selection, metrics: list[str]) -> str:
    head = "".join(
        f'<th data-better="{"higher" if higher_is_better(m) else "lower"}">{_breakable(m)}</th>'
        for m in metrics
    )
    rows = []
    for i, run in enumerate(sel.runs):
        cells = "".join(
            f'<td class="num" data-value="{run.metrics[m]!r}">{_fmt(run.metrics[m])}</td>'
            if m in run.metrics
            else '<td class="num">–</td>'
            for m in metrics
        )
        rows.append(
            f'<tr data-run="{run.run_id}"><td class="run"><span class="sw" style="background:{plots.colour(i)}"></span> '
            f"{html.escape(run.name)}</td><td>{run.status.lower()}</td>{cells}</tr>"
        )
    return (
        f'<table class="metrics"><thead><tr><th>run</th><th>status</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _params_table(sel: Selection, keys: list[str]) -> str:
    if not keys:
        return '<p class="note">All runs have the same parameters.</p>'
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    rows = "".join(
        f"<tr><td>{html.escape(r.name)}</td>"
        + "".join(f"<td>{html.escape(r.params.get(k, '–'))}</td>" for k in keys)
        + "</tr>"
        for r in sel.runs
    )
    return f'<table class="params"><thead><tr><th>run</th>{head}</tr></thead><tbody>{rows}</tbody></table>'


def render(sel: Selection, metric: str, cost: str = "train_time_s") -> str:
    """The page for `sel`, ranked and plotted on `metric` (a sweep's Pareto front: `metric` against
    `cost`)."""
    better = higher_is_better(metric)
    scored = [r for r in sel.runs if metric in r.metrics]
    best = (max if better else min)(scored, key=lambda r: r.metrics[metric])
    missing = [r.name for r in sel.runs if metric not in r.metrics]
    parts = [
        f"<h1>bluewhale report: {html.escape(sel.title)}</h1>",
        f'<p class="sub">{len(sel.runs)} runs · best {html.escape(metric)} {_fmt(best.metrics[metric])} '
        f"({html.escape(best.name)}) · made {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC</p>",
    ]
    if missing:
        parts.append(
            f'<p class="note">Without {html.escape(metric)} (failed or unfinished): '
            f"{html.escape(', '.join(missing))}</p>"
        )
    parts += ["<h2>Metrics</h2>", _metrics_table(sel, sel.results())]
    parts += ["<h2>Parameters that differ</h2>", _params_table(sel, sel.differing())]
    curves = sel.curves()
    if curves:
        labels = [sel.label(r) for r in sel.runs]
        charts = "".join(
            f'<figure data-curve="{k}">{plots.curve(sel.runs, k, labels)}</figure>' for k in curves
        )
        parts += ["<h2>Learning curves</h2>", f'<div class="charts">{charts}</div>']
    else:
        parts += ["<h2>Learning curves</h2>", '<p class="note">No run logged a metric history.</p>']
    if sel.kind == "sweep":
        charts = [f'<figure data-chart="history">{plots.history(sel.runs, metric, better)}</figure>']
        front = []
        if any(cost in r.metrics for r in scored):
            svg, front = plots.pareto(sel.runs, [sel.label(r) for r in sel.runs], metric, cost, better)
            charts.append(f'<figure data-chart="pareto">{svg}</figure>')
        parts += ["<h2>Optimisation</h2>", f'<div class="charts">{"".join(charts)}</div>']
        if front:
            names = ", ".join(html.escape(r.name) for r in front)
            parts.append(
                f'<p class="pareto">Pareto front ({html.escape(metric)} against {cost}): {names}</p>'
            )
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>bluewhale report: {html.escape(sel.title)}</title><style>{STYLE}</style></head>"
        f"<body>\n{body}\n<script>{SCRIPT}</script></body></html>\n"
    )


def page_height(sel: Selection) -> int:
    """About how tall the page is at 1400 px wide, for the PNG (a headless screenshot is one viewport)."""
    charts = len(sel.curves()) + (2 if sel.kind == "sweep" else 0)
    return 300 + 110 * (len(sel.runs) + 1) + 470 * ((charts + 1) // 2) + 100
