"""Knowledge distillation: a student trained to match a teacher's probabilities (and the labels).

`Distilled(student, teacher, alpha)` is what the trainer trains: its `forward` is the student's and its
`training_loss` is alpha * BCE(label) + (1 - alpha) * BCE(teacher's probability); the teacher is frozen and
not one of its modules, so neither the optimisers nor a saved student carry it.
"""

from __future__ import annotations

import torch
from torch import nn

from bluewhale.train.optim import optimizers


class Distilled(nn.Module):
    def __init__(self, student: nn.Module, teacher: nn.Module, alpha: float = 0.5) -> None:
        super().__init__()
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha: expected a weight in [0, 1], got {alpha}")
        self.student, self.alpha = student, alpha
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        object.__setattr__(self, "_teacher", teacher)  # not a submodule

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.student(batch)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            soft = torch.sigmoid(self._teacher(batch))
        logits = self.student(batch)
        loss = nn.functional.binary_cross_entropy_with_logits
        hard = loss(logits, batch["label"], reduction="none").mean(0).sum()
        return self.alpha * hard + (1 - self.alpha) * loss(logits, soft, reduction="none").mean(0).sum()

    def optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """The student's own choice (e.g. Wide & Deep's FTRL), else Adam / SparseAdam."""
        return optimizers(self.student, lr)
