"""The DLRM recipe on its planted twin: near the planted optimum, and better than a logistic regression
on the same ids (the baseline every recipe must beat)."""

import pytest

from tests.conftest import run_bluewhale, runs

pytestmark = pytest.mark.slow
TWIN = [
    "experiment=dlrm_criteo",
    "dataset.twin.rows=200000",
    "train.progress=false",
    "tracking.log_model=false",
]
# AUC below the planted optimum: 200k rows (a fifth of the recipe's default) leave a gap of about 0.028 (two
# epochs, then the valid AUC falls as embeddings memorise; recipes/dlrm_criteo/README.md has the figures)
MARGIN = 0.035
BEATS_BASELINE_BY = 0.01  # the twin plants pairwise interactions a linear model on ids cannot express


@pytest.fixture(scope="module")
def dlrm_and_baseline(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("dlrm_recipe")
    run_bluewhale(cwd, *TWIN)
    run_bluewhale(cwd, *TWIN, "model=logistic")
    baseline, dlrm = runs(cwd)
    return dlrm.data.metrics, baseline.data.metrics


def test_dlrm_reaches_the_planted_optimum_within_the_margin(dlrm_and_baseline):
    dlrm, _ = dlrm_and_baseline
    assert dlrm["optimal_test_auc"] >= dlrm["test_auc"]  # the planted optimum is a ceiling
    assert dlrm["test_auc"] >= dlrm["optimal_test_auc"] - MARGIN
    assert dlrm["optimal_test_logloss"] <= dlrm["test_logloss"] <= dlrm["optimal_test_logloss"] + 0.035


def test_dlrm_beats_logistic_regression_on_the_same_ids(dlrm_and_baseline):
    dlrm, baseline = dlrm_and_baseline
    assert baseline["optimal_test_auc"] == pytest.approx(dlrm["optimal_test_auc"])  # the same test rows
    assert dlrm["test_auc"] >= baseline["test_auc"] + BEATS_BASELINE_BY
