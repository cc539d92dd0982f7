"""The class Hydra discovers; the work is in `_impl` (imported lazily so plugin discovery stays fast)."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class SigOptSweeper(Sweeper):
    """Runs a multirun as a SigOpt experiment: suggestions -> launcher batches -> observations."""

    def __init__(self, **options: Any) -> None:
        from ._impl import SigOptSweeperImpl

        self.impl = SigOptSweeperImpl(**options)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.impl.sweep(arguments)
