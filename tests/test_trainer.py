"""The training loop: early stopping keeps the best epoch, the learning-rate schedule, the multi-task
loss, and a model's own objective and optimizers."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from bluewhale.train.trainer import bce, fit, lr_factor, predict


class Logistic(nn.Module):
    def __init__(self, n: int = 2) -> None:
        super().__init__()
        self.linear = nn.Linear(n, 1)
        nn.init.zeros_(self.linear.weight)  # the same start whatever ran before: tests do not share RNG state

    def forward(self, batch):
        return self.linear(batch["dense"]).squeeze(1)


def batches(n: int = 512, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = (torch.rand(n, generator=g) < torch.sigmoid(3 * x[:, 0])).float()
    return [{"dense": x[i : i + 64], "label": y[i : i + 64]} for i in range(0, n, 64)]


def test_early_stopping_restores_the_best_epoch_and_stops_after_patience():
    model = Logistic()
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.9])  # best at epoch 2, then two epochs without better
    seen = []

    def validate():
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scores)

    result = fit(model, batches(), epochs=5, lr=0.05, validate=validate, patience=2, progress=False)
    assert result.epochs == 4 and result.best_epoch == 2
    assert [h["valid"] for h in result.history] == [0.5, 0.7, 0.6, 0.65]
    for key, value in model.state_dict().items():  # the weights of epoch 2, not of epoch 4
        assert torch.equal(value, seen[1][key])


def test_without_validation_it_runs_every_epoch_and_learns():
    model = Logistic()
    result = fit(model, batches(), epochs=3, lr=0.05, progress=False)
    assert result.epochs == 3 and result.best_epoch is None and result.samples == 3 * 512
    assert model.linear.weight[0, 0] > 1.0  # the planted weight is 3 on the first input, 0 on the second
    assert abs(model.linear.weight[0, 1]) < 0.5


def test_learning_rate_warms_up_then_follows_the_schedule():
    assert lr_factor(0, 100, 10, "constant") == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "constant") == 1.0 and lr_factor(50, 100, 0, "constant") == 1.0
    assert lr_factor(50, 100, 0, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, 0, "cosine") == pytest.approx(0.0, abs=1e-12)
    model = Logistic()
    with pytest.raises(ValueError, match="train.schedule"):
        fit(model, batches(), epochs=1, lr=0.1, schedule="linear", progress=False)


def test_multi_task_loss_is_the_sum_of_the_task_means():
    logits, labels = torch.tensor([[0.0, 2.0], [1.0, -1.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    per_task = [nn.functional.binary_cross_entropy_with_logits(logits[:, t], labels[:, t]) for t in (0, 1)]
    assert bce(logits, labels).item() == pytest.approx(sum(per_task).item())
    assert bce(logits[:, 0], labels[:, 0]).item() == pytest.approx(per_task[0].item())


def test_a_model_with_its_own_objective_and_optimizers():
    class Own(Logistic):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def training_loss(self, batch):
            self.calls += 1
            return bce(self(batch), batch["label"]) + 0.0 * self.linear.bias.sum()

        def optimizers(self, lr):
            return [torch.optim.SGD(self.parameters(), lr=lr)]

    model = Own()
    fit(model, batches(), epochs=1, lr=0.1, progress=False)
    assert model.calls == 8


def test_divergence_is_an_error_naming_the_setting():
    model = Logistic()
    with torch.no_grad():
        model.linear.weight.fill_(math.nan)
    with pytest.raises(FloatingPointError, match="train.lr"):
        fit(model, batches(), epochs=1, lr=0.1, progress=False)


def test_predict_returns_probabilities_and_labels_in_order():
    scores, labels = predict(Logistic(), batches(128))
    assert scores.shape == labels.shape == (128,) and np.all((scores > 0) & (scores < 1))
    assert np.array_equal(labels, torch.cat([b["label"] for b in batches(128)]).numpy())
