"""int8 MLPs: dynamic quantisation (int8 weights, activations quantised per batch at run time) of every
Linear layer and GRU/LSTM, or static quantisation (activation ranges calibrated on train batches) of the
models' Linear/ReLU chains. Both run on PyTorch's x86 (fbgemm) int8 kernels."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.ao import quantization as tq

MODES = ("dynamic", "static")


def dynamic_int8(model: nn.Module, key: str) -> nn.Module:
    """`model` with int8 Linear layers and recurrent layers (DIEN's GRU; its AUGRU is made of Linears)."""
    if not any(isinstance(m, nn.Linear | nn.RNNBase) for m in model.modules()):
        raise ValueError(f"{key}: {type(model).__name__} has no Linear or recurrent layer to quantise")
    return tq.quantize_dynamic(model, {nn.Linear, nn.GRU, nn.LSTM}, dtype=torch.qint8)


class StaticMLP(nn.Module):
    """An MLP whose input is quantised with a calibrated range, run in int8 end to end, and dequantised."""

    def __init__(self, mlp: nn.Sequential) -> None:
        super().__init__()
        self.quant, self.mlp, self.dequant = tq.QuantStub(), mlp, tq.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.mlp(self.quant(x)))


def static_mlps(model: nn.Module) -> list[tuple[nn.Module, str, nn.Sequential]]:
    """The MLPs static int8 can run: `nn.Sequential`s made only of Linear and ReLU layers."""
    return [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.Sequential)
        and any(isinstance(m, nn.Linear) for m in child)
        and all(isinstance(m, nn.Linear | nn.ReLU) for m in child)
    ]


def static_int8(model: nn.Module, batches: Iterable, calibration_batches: int, key: str) -> nn.Module:
    """`model` with its Linear/ReLU MLPs in static int8: Linear+ReLU fused, activation ranges observed on
    `calibration_batches` batches (a histogram observer per layer), then converted."""
    found = static_mlps(model)
    if not found:
        raise ValueError(
            f"{key}.mode=static: {type(model).__name__} has no MLP made of Linear and ReLU layers only "
            "(DIEN's heads use Dice/PReLU, which have no static int8 kernel); use mode: dynamic"
        )
    torch.backends.quantized.engine = "x86"
    wrappers = []
    for parent, name, seq in found:
        fuse = [
            [str(i), str(i + 1)]
            for i, m in enumerate(seq)
            if isinstance(m, nn.Linear) and i + 1 < len(seq) and isinstance(seq[i + 1], nn.ReLU)
        ]
        if fuse:
            seq = tq.fuse_modules(seq.eval(), fuse)
        wrapper = StaticMLP(seq)
        wrapper.qconfig = tq.get_default_qconfig("x86")
        tq.prepare(wrapper, inplace=True)
        setattr(parent, name, wrapper)
        wrappers.append(wrapper)
    model.eval()
    with torch.no_grad():
        for i, batch in enumerate(batches):
            if i >= calibration_batches:
                break
            model(batch)
    for wrapper in wrappers:
        tq.convert(wrapper, inplace=True)
    return model
