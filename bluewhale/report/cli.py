"""`bluewhale-report <experiment name | sweep parent run id>`: the comparison page for those runs."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path


def default_uri() -> str:
    """As `bluewhale` does: $MLFLOW_TRACKING_URI, else mlflow.db in this folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bluewhale-report",
        description="Compare MLflow runs on one HTML page (and a PNG of it): an experiment's runs, or a "
        "sweep's (give its parent run id; the page is then logged to that run too).",
    )
    parser.add_argument("target", help="an experiment name, or a sweep's parent run id")
    parser.add_argument("--out", type=Path, help="the HTML file (default: report-<target>.html here)")
    parser.add_argument(
        "--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else ./mlflow.db"
    )
    parser.add_argument("--metric", default="test_auc", help="the metric runs are ranked and plotted on")
    parser.add_argument(
        "--cost", default="train_time_s", help="the Pareto front's other axis (lower is better)"
    )
    parser.add_argument("--no-png", action="store_true", help="skip the PNG (needs Chromium)")
    parser.add_argument("--no-log", action="store_true", help="do not log a sweep's report to its parent run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from bluewhale.report.runs import ReportError  # after parsing: --help answers without MLflow
    from bluewhale.report.write import write_report

    uri = args.tracking_uri or default_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        print(
            f"bluewhale-report: no MLflow store at {uri} (run bluewhale here first, or give --tracking-uri)",
            file=sys.stderr,
        )
        return 2
    out = args.out or Path(f"report-{re.sub(r'[^A-Za-z0-9_.-]+', '_', args.target)}.html")
    try:
        written = write_report(
            args.target,
            uri,
            out,
            metric=args.metric,
            cost=args.cost,
            png=not args.no_png,
            log_to_parent=not args.no_log,
        )
    except ReportError as error:
        print(f"bluewhale-report: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
