"""Every metric against values worked out by hand on tiny inputs (the working is in the comments)."""

import math

import numpy as np
import pytest

from bluewhale.metrics import (
    METRICS,
    Context,
    auc,
    average_precision,
    check_metrics,
    logloss,
    map_at_k,
    rce,
    score,
)


def test_auc_is_the_share_of_positive_negative_pairs_ranked_right():
    # positives 0.35 and 0.8 against negatives 0.1 and 0.4: (0.35 > 0.1), (0.35 < 0.4), (0.8 > both): 3 of 4
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    # a tie counts half: pairs (0.5 vs 0.5) = 1/2, (0.9 vs 0.5) = 1 -> 1.5 / 2
    assert auc(np.array([0, 1, 1]), np.array([0.5, 0.5, 0.9])) == pytest.approx(0.75)
    assert auc(np.array([1, 0]), np.array([0.2, 0.7])) == pytest.approx(0.0)


def test_logloss_is_the_mean_natural_log_loss_clipped_away_from_zero():
    # -(ln 0.8 + ln (1 - 0.4)) / 2
    assert logloss(np.array([1, 0]), np.array([0.8, 0.4])) == pytest.approx(
        -(math.log(0.8) + math.log(0.6)) / 2
    )
    assert logloss(np.array([1, 0]), np.array([0.8, 0.4])) == pytest.approx(0.366985, abs=1e-6)
    # a certain wrong answer costs -ln(1e-7) = 16.118, not infinity; a certain right one about 0
    assert logloss(np.array([1, 1]), np.array([0.0, 1.0])) == pytest.approx(-math.log(1e-7) / 2, rel=1e-4)
    # all labels of one class still score (labels=[0, 1] given to sklearn)
    assert logloss(np.array([0, 0]), np.array([0.5, 0.5])) == pytest.approx(math.log(2))


def test_average_precision_is_the_mean_precision_at_each_positive():
    # ranked: 0.9 (pos, precision 1/1), 0.8 (neg), 0.7 (pos, precision 2/3), 0.1 (neg) -> (1 + 2/3) / 2
    labels, scores = np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1])
    assert average_precision(labels, scores) == pytest.approx((1 + 2 / 3) / 2)
    # the positive last of three: precision 1/3
    assert average_precision(np.array([0, 0, 1]), np.array([0.9, 0.5, 0.1])) == pytest.approx(1 / 3)


def test_rce_is_the_percent_gain_in_cross_entropy_over_the_training_positive_rate():
    labels = np.array([1, 0, 0, 0])
    scores = np.array([0.5, 0.25, 0.25, 0.25])
    # constant 0.25: -(ln 0.25 + 3 ln 0.75) / 4 = 0.562335; the model: -(ln 0.5 + 3 ln 0.75) / 4 = 0.389048
    naive = -(math.log(0.25) + 3 * math.log(0.75)) / 4
    model = -(math.log(0.5) + 3 * math.log(0.75)) / 4
    expected = (1 - model / naive) * 100
    assert expected == pytest.approx(30.8156, abs=1e-4)
    assert rce(labels, scores, Context(positive_rate=0.25)) == pytest.approx(expected)
    # the constant predictor at the training rate scores 0, whatever the test rate is
    assert rce(labels, np.full(4, 0.4), Context(positive_rate=0.4)) == pytest.approx(0.0, abs=1e-9)
    # the baseline is the TRAINING rate (0.4 here), not the test rows' own rate (0.25)
    naive_train = -(math.log(0.4) + 3 * math.log(0.6)) / 4
    assert rce(labels, scores, Context(positive_rate=0.4)) == pytest.approx((1 - model / naive_train) * 100)
    with pytest.raises(ValueError, match="positive rate"):
        rce(labels, scores, Context())


def test_map12_ranks_the_ads_of_each_display_by_score():
    # display 7: scores 0.2, 0.9, 0.5, click on 0.5 -> rank 2 -> AP 1/2
    # display 3: scores 0.7, 0.1, click on 0.7 -> rank 1 -> AP 1; rows of the displays interleaved
    groups = np.array([7, 3, 7, 3, 7])
    labels = np.array([0, 1, 0, 0, 1])
    scores = np.array([0.2, 0.7, 0.9, 0.1, 0.5])
    assert map_at_k(labels, scores, Context(groups=groups)) == pytest.approx((1 / 2 + 1) / 2)


def test_map12_cuts_at_k_counts_groups_without_a_click_as_zero_and_breaks_ties_by_row_order():
    # 13 ads, the click ranked last: outside the top 12 -> 0; with k = 13 -> 1/13
    scores = np.linspace(1.0, 0.1, 13)
    labels = np.zeros(13, int)
    labels[-1] = 1
    groups = np.zeros(13, int)
    assert map_at_k(labels, scores, Context(groups=groups)) == 0.0
    assert map_at_k(labels, scores, Context(groups=groups), k=13) == pytest.approx(1 / 13)
    # a display with no click counts 0: (1 + 0) / 2
    groups, labels, scores = np.array([1, 1, 2, 2]), np.array([1, 0, 0, 0]), np.array([0.9, 0.1, 0.5, 0.4])
    assert map_at_k(labels, scores, Context(groups=groups)) == pytest.approx(0.5)
    # tied scores keep row order: the click in the second row of a tie is ranked 2nd -> 1/2
    assert map_at_k(np.array([0, 1]), np.array([0.3, 0.3]), Context(groups=np.array([5, 5]))) == 0.5
    assert map_at_k(np.array([1, 0]), np.array([0.3, 0.3]), Context(groups=np.array([5, 5]))) == 1.0
    # two clicks at ranks 1 and 3: (1/1 + 2/3) / min(2, 12)
    assert map_at_k(
        np.array([1, 0, 1]), np.array([0.9, 0.8, 0.7]), Context(groups=np.zeros(3))
    ) == pytest.approx((1 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="evaluate.group"):
        map_at_k(labels, scores, Context())


def test_score_names_metrics_per_task_and_gives_each_task_its_own_training_rate():
    labels = np.array([[1, 0], [0, 0], [0, 1], [0, 0]])
    scores = np.array([[0.5, 0.2], [0.25, 0.2], [0.25, 0.6], [0.25, 0.2]])
    out = score(["rce", "auc"], labels, scores, Context(positive_rate=[0.25, 0.4]), ["reply", "like"])
    assert set(out) == {"rce_reply", "auc_reply", "rce_like", "auc_like"}
    assert out["rce_reply"] == pytest.approx(rce(labels[:, 0], scores[:, 0], Context(positive_rate=0.25)))
    assert out["rce_like"] == pytest.approx(rce(labels[:, 1], scores[:, 1], Context(positive_rate=0.4)))
    single = score(["map12"], labels[:, 0], scores[:, 0], Context(groups=np.array([1, 1, 2, 2])), ["clicked"])
    assert single == {"map12": pytest.approx((1 + 0) / 2)}
    with pytest.raises(ValueError, match="do not line up"):
        score(["auc"], labels, scores[:, 0], Context(), ["a", "b"])


def test_metric_names_and_directions():
    assert {n for n, m in METRICS.items() if not m.higher_is_better} == {"logloss"}
    with pytest.raises(ValueError, match=r"evaluate.metrics: unknown metrics \['map"):
        check_metrics(["auc", "map"])
