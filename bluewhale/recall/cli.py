"""`bluewhale-recall RUN_ID --users 1 2 3 -k 10`: the top-k items of users from a run's recall index."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import mlflow

from bluewhale.recall.api import Index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bluewhale-recall", description=__doc__)
    parser.add_argument(
        "run", help="MLflow run id of a run with a recall stage, or a folder with index.faiss"
    )
    parser.add_argument("--users", nargs="+", type=int, required=True, help="user ids (as processed)")
    parser.add_argument("-k", type=int, default=10, help="items per user")
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{Path.cwd() / 'mlflow.db'}"),
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)",
    )
    args = parser.parse_args(argv)
    mlflow.set_tracking_uri(args.tracking_uri)
    try:
        items, scores = Index.load(args.run).search(args.users, args.k)
    except ValueError as error:
        print(f"bluewhale-recall: {error}", file=sys.stderr)
        return 2
    for user, row, score in zip(args.users, items, scores, strict=True):
        print(
            json.dumps({"user": user, "items": row.tolist(), "scores": [round(float(s), 4) for s in score]})
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
