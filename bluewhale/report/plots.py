"""The report's charts as inline SVG (matplotlib, text kept as text so the page can be searched and read
by a browser): learning curves, a sweep's optimisation history and its Pareto front."""

from __future__ import annotations

import io

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402

from bluewhale.report.runs import RunData  # noqa: E402

plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3})
PALETTE = plt.get_cmap("tab10").colors
MAX_LEGEND = 12  # more runs than this: colours only (the table's swatches say which is which)


def colour(i: int) -> str:
    return matplotlib.colors.to_hex(PALETTE[i % len(PALETTE)])


def _svg(fig) -> str:
    out = io.StringIO()
    fig.savefig(out, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = out.getvalue()
    return text[text.index("<svg") :]  # inline: no XML prolog or doctype


def curve(runs: list[RunData], key: str, labels: list[str]) -> str:
    """One metric's history, a line per run (step on x)."""
    fig, ax = plt.subplots(figsize=(6.2, 3.4))
    for i, run in enumerate(runs):
        points = run.curves.get(key)
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(
                steps,
                values,
                marker="o" if len(points) < 12 else None,
                ms=3,
                color=colour(i),
                label=labels[i],
            )
    ax.set_title(key)
    ax.set_xlabel("epoch" if key.startswith("epoch_") else "step")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if len(runs) <= MAX_LEGEND:
        ax.legend(fontsize=7, loc="best")
    return _svg(fig)


def history(runs: list[RunData], metric: str, higher_is_better: bool) -> str:
    """A sweep's trials in order: each trial's value and the best so far."""
    fig, ax = plt.subplots(figsize=(6.2, 3.4))
    trials = [(i + 1, r.metrics[metric]) for i, r in enumerate(runs) if metric in r.metrics]
    xs, ys = zip(*trials, strict=True)
    best, running = [], None
    for y in ys:
        running = y if running is None else (max if higher_is_better else min)(running, y)
        best.append(running)
    ax.scatter(xs, ys, s=18, color=[colour(x - 1) for x in xs], label="trial", zorder=3)
    ax.step(xs, best, where="post", color="black", lw=1.2, label="best so far")
    ax.set_title(f"optimisation history: {metric}")
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    return _svg(fig)


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indices of the points (time, value) no other point beats on both: less time, better value."""
    sign = 1 if higher_is_better else -1
    front = []
    for i, (t, v) in enumerate(points):
        dominated = any(
            (t2 <= t and sign * v2 >= sign * v) and (t2 < t or sign * v2 > sign * v)
            for j, (t2, v2) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


def pareto(
    runs: list[RunData], labels: list[str], metric: str, cost: str, higher_is_better: bool
) -> tuple[str, list[RunData]]:
    """The trials on (cost, metric), the Pareto front joined; returns the SVG and the front's runs."""
    chosen = [(i, r) for i, r in enumerate(runs) if metric in r.metrics and cost in r.metrics]
    points = [(r.metrics[cost], r.metrics[metric]) for _, r in chosen]
    front = sorted(pareto_front(points, higher_is_better), key=lambda k: points[k][0])
    fig, ax = plt.subplots(figsize=(6.2, 3.4))
    ax.scatter(
        *zip(*points, strict=True), s=18, color=[colour(i) for i, _ in chosen], zorder=3, label="trial"
    )
    ax.plot([points[k][0] for k in front], [points[k][1] for k in front], "k--", lw=1, label="Pareto front")
    for k in front:
        ax.annotate(
            labels[chosen[k][0]][:32], points[k], fontsize=6, xytext=(3, 3), textcoords="offset points"
        )
    ax.set_title(f"Pareto front: {metric} against {cost}")
    ax.set_xlabel(cost)
    ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    return _svg(fig), [chosen[k][1] for k in front]
