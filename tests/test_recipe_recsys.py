"""The RecSys 2021 recipe on its planted twin: every task within a stated margin of its planted optimum,
and better than the issue's baseline, a per-task logistic regression on the user ids (engaging user and
author), fitted on the same train split.

Margins, measured at 100k rows (recipes/recsys_twitter/README.md): the twin draws each engaging user's
propensities from N(0, 0.7) per task and each engager is seen about 5 times, so no learner gets close to
the planted optimum there; a correctly specified logistic regression on the planted features (tuned on
the valid split) is itself 5.7-7.1 RCE points and 0.03-0.08 AP below it. The model's measured gaps are
7.3-7.9 RCE and 0.03-0.09 AP; the margins leave room for the noise of 200 quote positives in the test.
"""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from bluewhale.metrics import Context, average_precision, rce
from tests.conftest import run_bluewhale, runs

pytestmark = pytest.mark.slow
TASKS = ["reply", "retweet", "quote", "like"]
RECIPE = [
    "experiment=recsys_twitter",  # 100k rows of the twin: 70k train, 10k valid, 20k test
    "train.progress=false",
    "tracking.log_model=false",
    "cluster.threads=1",  # two threads on a shared 2-core machine were 15x slower a step
]
# below the planted optimum, per task (measured gap in the comment)
AP_MARGIN = {"reply": 0.08, "retweet": 0.12, "quote": 0.05, "like": 0.11}  # 0.058, 0.090, 0.031, 0.080
RCE_MARGIN = {"reply": 10.0, "retweet": 10.0, "quote": 10.0, "like": 10.0}  # 7.6, 7.4, 7.9, 7.3
# above the baseline, over the four tasks (measured: mean RCE +1.5, mean AP +0.018)
BEATS_BASELINE_RCE, BEATS_BASELINE_AP = 0.75, 0.008
USER_IDS = ["engaging_user_id", "engaged_with_user_id"]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("recsys_recipe")
    run_bluewhale(cwd, *RECIPE)
    run = runs(cwd)[0]
    return run.data.metrics, Path(run.data.tags["bluewhale.processed_path"])


def one_hot(path: Path, split: str, cardinalities: dict) -> tuple[sp.csr_matrix, np.ndarray]:
    table = pq.read_table(path / f"{split}.parquet", columns=USER_IDS + TASKS)
    blocks = []
    for c in USER_IDS:
        ids = table.column(c).to_numpy().astype(np.int64)
        ones = np.ones(len(ids))
        blocks.append(sp.csr_matrix((ones, (np.arange(len(ids)), ids)), shape=(len(ids), cardinalities[c])))
    return sp.hstack(blocks).tocsr(), np.stack([table.column(t).to_numpy() for t in TASKS], 1)


def logistic_on_user_ids(path: Path) -> dict[str, float]:
    """Per task, an L2 logistic regression on one-hot user ids (C=0.3: the best of 0.03-1 on the valid
    split), scored like the recipe: AP and RCE on the test split against the train positive rate."""
    cardinalities = json.loads((path / "meta.json").read_text())["cardinalities"]
    (x_train, y_train), (x_test, y_test) = (one_hot(path, s, cardinalities) for s in ("train", "test"))
    out = {}
    for k, task in enumerate(TASKS):
        fitted = LogisticRegression(C=0.3, max_iter=500).fit(x_train, y_train[:, k])
        p = fitted.predict_proba(x_test)[:, 1]
        out[f"test_ap_{task}"] = average_precision(y_test[:, k], p)
        out[f"test_rce_{task}"] = rce(y_test[:, k], p, Context(positive_rate=float(y_train[:, k].mean())))
    return out


def test_each_task_is_within_its_margin_of_the_planted_optimum(recipe):
    metrics, _ = recipe
    assert metrics["rows_train"] == 70000 and metrics["rows_valid"] == 10000
    assert metrics["epochs"] >= 2  # early stopping did not end it at the first epoch
    for task in TASKS:
        ap, rce_ = metrics[f"test_ap_{task}"], metrics[f"test_rce_{task}"]
        best_ap, best_rce = metrics[f"optimal_test_ap_{task}"], metrics[f"optimal_test_rce_{task}"]
        assert best_ap - AP_MARGIN[task] <= ap <= best_ap, task
        assert best_rce - RCE_MARGIN[task] <= rce_ <= best_rce, task
        assert rce_ > 0, task  # better than always predicting the train rate


def test_the_multi_task_model_beats_logistic_regression_on_the_user_ids(recipe):
    metrics, processed = recipe
    baseline = logistic_on_user_ids(processed)

    def mean(source: dict, metric: str) -> float:
        return float(np.mean([source[f"test_{metric}_{t}"] for t in TASKS]))

    assert mean(metrics, "rce") >= mean(baseline, "rce") + BEATS_BASELINE_RCE
    assert mean(metrics, "ap") >= mean(baseline, "ap") + BEATS_BASELINE_AP
