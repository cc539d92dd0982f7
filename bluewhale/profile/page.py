"""The profile as one self-contained HTML page: summary tables and matplotlib figures embedded as PNG."""

from __future__ import annotations

import base64
import html
import io
import math

GRID = 6  # figures a row


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _grid(panels: list[tuple[str, object]], draw) -> str | None:
    """One figure of small panels (title, data), each drawn by `draw(ax, data)`; a data URL, or None."""
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = math.ceil(len(panels) / GRID)
    fig, axes = plt.subplots(rows, GRID, figsize=(2.7 * GRID, 2.2 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (title, data) in zip(axes.flat, panels, strict=False):
        draw(ax, data)
        ax.set_title(title, fontsize=9, y=1.0)  # a fixed place: auto-placing 40 titles costs seconds
        ax.minorticks_off()  # as do log axes' minor ticks
        ax.tick_params(labelsize=7)
    fig.subplots_adjust(
        left=0.04, right=0.99, bottom=0.5 / (2.2 * rows), top=1 - 0.35 / (2.2 * rows), wspace=0.35, hspace=0.6
    )
    try:
        return _png(fig)
    finally:
        plt.close(fig)


def _draw_curve(ax, points) -> None:
    ranks, counts = zip(*points, strict=True)
    ax.loglog(ranks, counts, marker=".", markersize=3, linewidth=1)
    ax.set_xlabel("rank", fontsize=7)
    ax.set_ylabel("count", fontsize=7)


def _draw_hist(ax, hist) -> None:
    edges, counts = hist["edges"], hist["counts"]
    if hist["scale"] == "log1p":  # equal bins in log1p(x): drawn on a log1p axis
        import numpy as np

        edges = list(np.log1p(edges))
        ax.set_xlabel("log1p(value)", fontsize=7)
    ax.stairs(counts, edges, fill=True)


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}g}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _columns_section(title: str, profile: dict) -> str:
    sampled = (
        f" Distinct counts, top values, curves and histograms from a random sample of {profile['sampled']:,} "
        f"rows (profile.sample_rows); missing rates from all {profile['rows']:,}."
        if profile.get("sampled")
        else ""
    )
    rows = []
    for name, s in profile["columns"].items():
        top = ", ".join(f"{_fmt(v)} ({c:,})" for v, c in s.get("top", [])[:3])
        rows.append([name, s["type"], s["missing_rate"], s.get("distinct"), s.get("zero_rate"), top])
    curves = [(n, s["curve"]) for n, s in profile["columns"].items() if s.get("curve") and "hist" not in s]
    hists = [(n, s["hist"]) for n, s in profile["columns"].items() if s.get("hist")]
    hists += [(f"{n} (length)", s["lengths"]) for n, s in profile["columns"].items() if s.get("lengths")]
    out = [f"<h2>{html.escape(title)}</h2><p>{profile['rows']:,} rows.{sampled}</p>"]
    for caption, panels, draw in (
        ("Frequency curves (log-log): count of the value at each rank", curves, _draw_curve),
        ("Histograms of numeric columns and list lengths", hists, _draw_hist),
    ):
        image = _grid(panels, draw)
        if image:
            out.append(f"<h3>{caption}</h3><img alt='{html.escape(caption)}' src='{image}'>")
    out.append("<h3>Columns</h3>")
    out.append(
        _table(["column", "type", "missing rate", "distinct", "id 0 share", "top values (count)"], rows)
    )
    return "\n".join(out)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f0f3f7; } img { max-width: 100%; } h2 { margin-top: 32px; border-bottom: 2px solid #3a6ea5; }
.note { color: #555; font-size: 13px; max-width: 520px; }
.row { display: flex; gap: 40px; align-items: flex-start; } .row h2 { margin-top: 8px; }
"""


def render(report: dict) -> str:
    """The HTML page of a profile report (see `bluewhale.profile.profile`)."""
    title = f"Data profile: {report['dataset']}"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"]
    parts.append(f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>")
    parts.append(
        f"<p class='note'>pipeline <b>recdp={html.escape(str(report['pipeline']))}</b>, computed on "
        f"<b>{html.escape(report['computed_on'])}</b>.</p>"
    )
    parts.append("<div class='row'><div>")
    if report.get("label_rates"):
        parts.append("<h2>Label rate per split</h2>")
        labels = sorted({k for rates in report["label_rates"].values() for k in rates})
        parts.append(
            _table(
                ["split", "rows", *labels],
                [
                    [s, report["rows"].get(s), *[r.get(k) for k in labels]]
                    for s, r in report["label_rates"].items()
                ],
            )
        )
    if report.get("changes"):
        changes = report["changes"]
        parts.append("<h2>What the pipeline changed</h2>")
        parts.append(
            _table(
                ["input rows", "bad rows dropped", *[f"{s} rows" for s in changes["rows"]]],
                [[changes["input_rows"], changes["bad_rows"], *changes["rows"].values()]],
            )
        )
        if changes["folded"]:
            splits = list(next(iter(changes["folded"].values()))["zero_rate"])
            parts.append(
                "</div><div><h2>Ids folded to 0</h2><p class='note'>Share of each id column at id 0 (values rarer than the frequency threshold, "
                "unseen in train, or missing), beside the column's missing rate in the raw input.</p>"
            )
            parts.append(
                _table(
                    ["column", "raw missing rate", *[f"id 0 share ({s})" for s in splits]],
                    [
                        [c, f["raw_missing_rate"], *f["zero_rate"].values()]
                        for c, f in changes["folded"].items()
                    ],
                )
            )
    parts.append("</div></div>")
    for title, profile in report["tables"].items():
        parts.append(_columns_section(title, profile))
    parts.append("</body></html>")
    return "\n".join(parts)
