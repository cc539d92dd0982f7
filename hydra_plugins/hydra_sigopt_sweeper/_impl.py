"""The sweep loop: build and check the experiment, then ask SigOpt for a batch of suggestions, launch it with
the configured launcher, and report each job's metrics (or its failure) back, until the budget is spent."""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from . import _experiment as exp
from ._journal import RESULTS, Journal, write_atomically
from ._optimizer import ApiOptimizer, LiteOptimizer

log = logging.getLogger(__name__)
DRIVERS = ("lite", "api")
STRAGGLER_POLL_S = 1.0


class RecordingTask:
    """Wraps the task function so every job leaves its outcome in the sweep folder, whichever launcher ran
    it and wherever: the sweeper reads outcomes from there, so a killed job is simply one with no outcome."""

    def __init__(self, task_function: TaskFunction) -> None:
        self.task_function = task_function

    def __call__(self, cfg: DictConfig) -> Any:
        hydra = HydraConfig.get()
        folder = Path(hydra.sweep.dir) / RESULTS
        folder.mkdir(parents=True, exist_ok=True)
        job = hydra.job.num
        write_atomically(
            folder / f"{job}.started", json.dumps({"host": socket.gethostname(), "pid": os.getpid()})
        )
        try:
            returned = self.task_function(cfg)
        except BaseException as err:
            write_atomically(folder / f"{job}.json", json.dumps({"error": f"{type(err).__name__}: {err}"}))
            raise
        write_atomically(folder / f"{job}.json", json.dumps({"returned": returned}, default=str))
        return returned


def _load(dotted: str) -> Any:
    module, _, name = dotted.replace(":", ".").rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise exp.RecipeError(f"hydra.sweeper.recipe: cannot import {dotted!r}: {err}") from err


class SigOptSweeperImpl:
    def __init__(
        self,
        driver: str,
        api_url: str,
        token_env: str,
        name: str,
        recipe: str | None,
        parameters: Any,
        metrics: Any,
        budget: int | None,
        parallel_bandwidth: int,
        seed: int | None,
        dry_run: bool,
    ) -> None:
        if driver not in DRIVERS:
            raise exp.RecipeError(f"hydra.sweeper.driver: {driver!r} is not one of {list(DRIVERS)}")
        self.driver, self.api_url, self.token_env = driver, api_url, token_env
        self.recipe, self.seed, self.dry_run = recipe, seed, dry_run
        self.own = {
            "name": name,
            "parameters": parameters,
            "metrics": metrics,
            "budget": budget,
            "parallel_bandwidth": parallel_bandwidth,
        }

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=RecordingTask(task_function), config=config
        )

    def experiment(self) -> dict[str, Any]:
        """The sweeper's own fields, passed through the recipe generator when one is configured."""
        experiment = exp.normalise(self.own)
        if self.recipe:
            experiment = exp.normalise(_load(self.recipe)(self.config, experiment))
        return experiment

    def _fixed(self, arguments: list[str]) -> dict[str, str]:
        """The command line's plain overrides by key; a value sweep there has no meaning for SigOpt."""
        parsed = OverridesParser.create(config_loader=self.hydra_context.config_loader).parse_overrides(
            arguments
        )
        for override in parsed:
            if override.is_sweep_override():
                raise exp.RecipeError(
                    f"{override.input_line}: a sweep over values is not for the sigopt sweeper; "
                    "tune it as a parameter (hydra.sweeper.parameters or advisor.parameters)"
                )
        return {o.key_or_group: o.input_line for o in parsed}

    def sweep(self, arguments: list[str]) -> Any:
        experiment = self.experiment()
        fixed = self._fixed(arguments)
        exp.validate(experiment, self.config, fixed)
        exp.check_choice_paths(
            experiment,
            lambda extra: self.hydra_context.config_loader.load_sweep_config(
                master_config=self.config, sweep_overrides=[*arguments, *extra]
            ),
        )
        if self.dry_run:
            print(yaml.safe_dump(experiment, sort_keys=False), end="")
            return []
        folder = Path(self.config.hydra.sweep.dir)
        journal = Journal(folder)
        journal.check_recipe(experiment)
        OmegaConf.save(self.config, folder / "multirun.yaml")
        optimizer = self._optimizer(experiment, journal)
        budget, returns = experiment["budget"], []
        while len(journal.observations) < budget:
            count = min(experiment["parallel_bandwidth"], budget - len(journal.observations))
            suggestions = optimizer.ask(count)
            batch = [[*arguments, *exp.overrides(experiment, s.assignments)] for s in suggestions]
            self.validate_batch_is_legal(batch)
            first = journal.reserve_jobs(len(batch))
            try:
                returns.append(self.launcher.launch(batch, initial_job_idx=first))
            except Exception as err:  # e.g. submitit raises when one job's process was killed
                log.warning(
                    "the launcher raised %s: %s; reading each job's outcome from the sweep folder",
                    type(err).__name__,
                    err,
                )
                self._wait_for_stragglers(journal, range(first, first + len(batch)))
            for job, suggestion in zip(range(first, first + len(batch)), suggestions, strict=True):
                values, reason = self._outcome(experiment, journal, job)
                optimizer.tell(suggestion, values)
                observation = {
                    "job": job,
                    "assignments": suggestion.assignments,
                    "failed": values is None,
                    "values": values,
                    "reason": reason,
                }
                if experiment["conditionals"]:  # the knobs of the models this trial did not choose
                    observation["inactive"] = exp.inactive(experiment, suggestion.assignments)
                journal.record(observation)
                if values is None:
                    log.warning("job %d failed: %s; reported to SigOpt as a failed observation", job, reason)
            summary = journal.write_summary(experiment)
            log.info(
                "SigOpt: %d/%d observations (%d failed); best so far: %s",
                summary["observations"],
                budget,
                summary["failed_observations"],
                [b["values"] for b in summary["best"]],
            )
        journal.write_summary(experiment)
        return returns

    def validate_batch_is_legal(self, batch: list[list[str]]) -> None:
        for overrides in batch:
            self.hydra_context.config_loader.load_sweep_config(
                master_config=self.config, sweep_overrides=list(overrides)
            )

    def _optimizer(self, experiment: dict[str, Any], journal: Journal) -> LiteOptimizer | ApiOptimizer:
        body = exp.sigopt_body(experiment, experiment["parallel_bandwidth"])
        if self.driver == "lite":
            return LiteOptimizer(body, journal.observations, self.seed)
        optimizer = ApiOptimizer(body, self.api_url, self.token_env, journal.state)
        journal.save_state()  # the server's experiment id, so a restart continues it
        return optimizer

    @staticmethod
    def _wait_for_stragglers(journal: Journal, jobs: range) -> None:
        """After a launcher error, other jobs of the batch may still run: wait for those on this host."""
        while any(journal.running_here(job) for job in jobs):
            time.sleep(STRAGGLER_POLL_S)

    @staticmethod
    def _outcome(
        experiment: dict[str, Any], journal: Journal, job: int
    ) -> tuple[dict[str, float] | None, str]:
        path = journal.result_path(job)
        if not path.exists():
            return None, "no outcome: the job's process was killed or died before it finished"
        result = json.loads(path.read_text())
        if "error" in result:
            return None, f"the job raised {result['error']}"
        return exp.outcome(experiment, result["returned"])
