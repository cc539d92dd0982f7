"""Links into the MLflow UI that open an experiment on its training runs.

MLflow 3.17's UI picks its view (GenAI or model training) from its own switch, kept per browser, and
starts on GenAI; the experiment's `mlflow.experimentKind` tag (set by `use_tracking`) is not what
it reads there. A link with `workflowType=machine_learning` opens the runs table directly, so
`make ui` prints one per experiment: `python -P bluewhale/tracking/ui.py <tracking uri> <UI address>` (run
as a file: it needs MLflow alone, not the package; -P keeps this folder off the import path).
"""

from __future__ import annotations

import sys

from mlflow.tracking import MlflowClient


def runs_url(base: str, experiment_id: str) -> str:
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def main(argv: list[str]) -> int:
    uri, base = argv
    for experiment in MlflowClient(tracking_uri=uri).search_experiments():
        if experiment.name != "Default" or experiment.experiment_id != "0":
            print(f"{experiment.name}: {runs_url(base, experiment.experiment_id)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
