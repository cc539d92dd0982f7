"""`bluewhale-report`: the page a real headless Chromium shows for a real (tiny) sweep, the page logged to
the sweep's parent run, and what an unknown target or runs without the metric get (a message, no file)."""

from __future__ import annotations

import re

import mlflow
import pytest

from bluewhale.report import browser
from bluewhale.report.cli import main
from bluewhale.report.plots import pareto_front

needs_chromium = pytest.mark.skipif(browser.find() is None, reason="Chromium is not installed")


def _report(capsys, *args: str) -> tuple[int, str]:
    """`bluewhale-report ARGS` in this process (its argument parsing, messages and exit status)."""
    code = main(list(args))
    return code, capsys.readouterr().err


def test_the_pareto_front_keeps_the_points_nothing_beats_on_both_axes():
    points = [(1.0, 0.70), (2.0, 0.75), (3.0, 0.74), (2.0, 0.72), (4.0, 0.80), (4.0, 0.80)]  # (time, auc)
    assert pareto_front(points, higher_is_better=True) == [0, 1, 4, 5]  # ties stay, both
    assert pareto_front([(t, -v) for t, v in points], higher_is_better=False) == [0, 1, 4, 5]


@pytest.mark.slow
@needs_chromium
def test_a_sweep_ends_with_its_report_logged_to_the_parent_run(tiny_sweep):
    cwd, _, parent, children = tiny_sweep
    mlflow.set_tracking_uri(f"sqlite:///{cwd}/mlflow.db")  # other tests may have moved it
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id, "report")}
    assert logged == {"report/report.html", "report/report.png"}
    page = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/report/report.html")
    for child in children:
        assert child.info.run_name in page


@pytest.mark.slow
@needs_chromium
def test_the_page_shows_runs_metrics_differing_params_curves_and_the_sweep(tiny_sweep, tmp_path, capsys):
    cwd, _, parent, children = tiny_sweep
    mlflow.set_tracking_uri(f"sqlite:///{cwd}/mlflow.db")  # other tests may have moved it
    out = tmp_path / "sweep.html"
    code, err = _report(
        capsys,
        parent.info.run_id,
        "--tracking-uri",
        f"sqlite:///{cwd}/mlflow.db",
        "--out",
        str(out),
        "--no-log",
    )
    assert code == 0, err
    assert out.exists() and out.with_suffix(".png").stat().st_size > 10_000
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    dom = browser.dom(out.as_uri())  # what Chromium shows once the page's script ran
    assert 'data-ready="true"' in dom
    rows = re.findall(r'<tr data-run="(\w+)">(.*?)</tr>', dom, re.S)
    assert [run_id for run_id, _ in rows] == [
        c.info.run_id for c in sorted(children, key=lambda c: c.info.start_time)
    ]
    for child in children:
        row = dict(rows)[child.info.run_id]
        assert child.info.run_name in row
        assert f"{child.data.metrics['test_auc']:.4g}" in row
    best = max(children, key=lambda c: c.data.metrics["test_auc"])
    assert re.search(rf'class="num best" data-value="{best.data.metrics["test_auc"]!r}"', dom) or re.search(
        rf'data-value="{best.data.metrics["test_auc"]!r}" class="num best"', dom
    )
    params = re.search(r'<table class="params">(.*?)</table>', dom, re.S).group(1)
    assert "<th>model.embedding_dim</th>" in params and "<td>4</td>" in params and "<td>8</td>" in params
    assert "dataset.rows" not in params  # the same on both runs
    for curve in ("step_train_loss", "epoch_valid_auc", "throughput_samples_per_s"):
        figure = re.search(rf'<figure data-curve="{curve}">(.*?)</figure>', dom, re.S).group(1)
        assert figure.count("<path") >= 2 and "embedding_dim=4" in figure  # a line each, a legend
    assert '<figure data-chart="history">' in dom and '<figure data-chart="pareto">' in dom
    assert "Pareto front (test_auc against train_time_s)" in dom


@pytest.mark.slow
def test_an_unknown_target_or_runs_without_the_metric_say_so_and_write_nothing(
    tiny_sweep, tmp_path, capsys, monkeypatch
):
    cwd, _, _, _ = tiny_sweep
    mlflow.set_tracking_uri(f"sqlite:///{cwd}/mlflow.db")  # other tests may have moved it
    out = tmp_path / "r.html"
    uri = f"sqlite:///{cwd}/mlflow.db"
    for target in ("no-such-experiment", "0123456789abcdef0123456789abcdef"):
        code, err = _report(capsys, target, "--tracking-uri", uri, "--out", str(out))
        assert code == 2
        assert f"{target!r} in the MLflow store at {uri}" in err and "'bluewhale'" in err
    code, err = _report(
        capsys, "bluewhale", "--tracking-uri", uri, "--metric", "test_map12", "--out", str(out)
    )
    assert code == 2
    assert "none of the 2 runs of experiment bluewhale has the metric 'test_map12'" in err
    assert "test_auc" in err  # what they do have
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # no mlflow.db here: none is made
    code, err = _report(capsys, "bluewhale", "--out", str(out))
    assert code == 2 and "no MLflow store at" in err
    assert list(tmp_path.iterdir()) == [], "nothing half-written is left"
