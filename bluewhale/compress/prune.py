"""Pruning: structured (whole hidden neurons of an MLP removed, so its Linear layers shrink) and magnitude
(the smallest weights of Linear layers and GRUs set to zero, gradually during training by a `Callback`, or
at once on a trained model; the zeros are held through fine-tuning)."""

from __future__ import annotations

import math

import torch
from torch import nn

from bluewhale.train.callbacks import Callback, TrainState

# modules acting on each channel alone, which may sit between two Linear layers whose shared width shrinks
CHANNELWISE = (nn.ReLU, nn.LeakyReLU, nn.Dropout, nn.Identity, nn.Sigmoid, nn.Tanh, nn.GELU)


def _slice_channelwise(module: nn.Module, keep: torch.Tensor) -> bool:
    """Shrink a per-channel module to the kept channels in place; False if it is not one we know."""
    if isinstance(module, CHANNELWISE):
        return True
    if isinstance(module, nn.PReLU):
        if module.num_parameters > 1:
            module.weight = nn.Parameter(module.weight.data[keep].clone())
            module.num_parameters = len(keep)
        return True
    if isinstance(module, nn.BatchNorm1d):
        _slice_batchnorm(module, keep)
        return True
    norm, alpha = getattr(module, "norm", None), getattr(module, "alpha", None)
    if (
        isinstance(norm, nn.BatchNorm1d) and isinstance(alpha, nn.Parameter) and alpha.ndim == 1
    ):  # DIEN's Dice
        _slice_batchnorm(norm, keep)
        module.alpha = nn.Parameter(alpha.data[keep].clone())
        return True
    return False


def _slice_batchnorm(norm: nn.BatchNorm1d, keep: torch.Tensor) -> None:
    for name in ("weight", "bias"):
        if getattr(norm, name) is not None:
            setattr(norm, name, nn.Parameter(getattr(norm, name).data[keep].clone()))
    for name in ("running_mean", "running_var"):
        if getattr(norm, name) is not None:
            setattr(norm, name, getattr(norm, name)[keep].clone())
    norm.num_features = len(keep)


def prunable_pairs(seq: nn.Sequential) -> list[tuple[int, int]]:
    """(i, j): Linear layers of `seq` with only per-channel modules between them (their shared width)."""
    layers = list(seq)
    linears = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear)]
    return [(i, j) for i, j in zip(linears, linears[1:], strict=False)]


def prune_neurons(model: nn.Module, amount: float, key: str) -> dict[str, int]:
    """Remove the `amount` fraction of every hidden layer's neurons in the model's MLPs (`nn.Sequential`s of
    Linear layers), the ones whose incoming and outgoing weights have the smallest norms. Returns the
    widths before -> after, by layer name. An error naming `key` if nothing can be pruned."""
    if not 0 < amount < 1:
        raise ValueError(f"{key}.amount: expected a fraction in (0, 1), got {amount!r}")
    widths: dict[str, int] = {}
    for name, seq in list(model.named_modules()):
        if not isinstance(seq, nn.Sequential):
            continue
        for i, j in prunable_pairs(seq):
            first, second = seq[i], seq[j]
            between = list(seq)[i + 1 : j]
            width = first.out_features
            importance = first.weight.detach().norm(dim=1) * second.weight.detach().norm(dim=0)
            k = max(1, math.ceil(width * (1 - amount)))
            keep = importance.topk(k).indices.sort().values
            if not all(_slice_channelwise(m, keep) for m in between):
                continue  # an unknown module between them: leave this width alone
            seq[i] = _linear(
                first.weight.data[keep], first.bias.data[keep] if first.bias is not None else None
            )
            seq[j] = _linear(
                second.weight.data[:, keep], second.bias.data if second.bias is not None else None
            )
            widths[f"{name}.{i}" if name else str(i)] = k
    if not widths:
        raise ValueError(
            f"{key}: {type(model).__name__} has no MLP hidden layer to prune "
            "(nn.Sequential of Linear layers with per-channel activations between them)"
        )
    return widths


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    layer.weight = nn.Parameter(weight.clone())
    if bias is not None:
        layer.bias = nn.Parameter(bias.clone())
    return layer


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """The weights magnitude pruning acts on: Linear weights and GRU/LSTM weight matrices."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            out[f"{name}.weight"] = module.weight
        elif isinstance(module, nn.RNNBase):
            out |= {f"{name}.{p}": w for p, w in module.named_parameters() if p.startswith("weight")}
    return out


def sparsity(model: nn.Module) -> float:
    """The fraction of zeros among the weights magnitude pruning acts on."""
    weights = list(prunable_weights(model).values())
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / max(total, 1)


def cubic_sparsity(step: int, initial: float, final: float, start: int, end: int) -> float:
    """Zhu & Gupta's schedule: s = final + (initial - final) * (1 - progress)^3, progress in [0, 1]."""
    if end <= start:
        return final if step >= start else initial
    progress = min(max((step - start) / (end - start), 0.0), 1.0)
    return final + (initial - final) * (1 - progress) ** 3


class MagnitudePruning(Callback):
    """Gradual magnitude pruning during training: every `every` steps between `start_step` and `end_step`
    each prunable weight's smallest magnitudes are masked to reach the scheduled sparsity; the masks are
    applied after every optimiser step (so Adam's momentum cannot revive a pruned weight)."""

    def __init__(
        self,
        initial_sparsity: float = 0.0,
        final_sparsity: float = 0.8,
        start_step: int = 0,
        end_step: int = 1000,
        every: int = 50,
    ) -> None:
        for name, value in (("initial_sparsity", initial_sparsity), ("final_sparsity", final_sparsity)):
            if not 0 <= value < 1:
                raise ValueError(
                    f"compression.magnitude_prune.{name}: expected a fraction in [0, 1), got {value}"
                )
        if every < 1:
            raise ValueError(f"compression.magnitude_prune.every: expected a step count >= 1, got {every}")
        self.initial, self.final, self.start, self.end, self.every = (
            initial_sparsity,
            final_sparsity,
            start_step,
            end_step,
            every,
        )
        self.masks: dict[str, torch.Tensor] = {}

    def on_fit_start(self, state: TrainState) -> None:
        if self.start == 0 and self.initial > 0:
            self.update(state.model, self.initial)

    def on_step_end(self, state: TrainState, loss: float, batch_size: int) -> None:
        step = state.step
        if self.start <= step <= self.end + self.every - 1 and (step - self.start) % self.every == 0:
            self.update(state.model, cubic_sparsity(step, self.initial, self.final, self.start, self.end))
        self.apply(state.model)

    def on_fit_end(self, state: TrainState, result) -> None:
        self.apply(state.model)  # the best epoch's weights (restored) are pruned too

    @torch.no_grad()
    def update(self, model: nn.Module, target: float) -> None:
        """New masks: in each weight, the `target` fraction with the smallest magnitudes."""
        for name, weight in prunable_weights(model).items():
            k = int(target * weight.numel())
            if k == 0:
                continue
            threshold = weight.abs().flatten().kthvalue(k).values
            self.masks[name] = weight.abs() > threshold
        self.apply(model)

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        weights = prunable_weights(model)
        for name, mask in self.masks.items():
            if name in weights and weights[name].shape == mask.shape:
                weights[name].mul_(mask)
