"""The sweeper's typed options, registered as `hydra/sweeper=sigopt` (select it, then override any field)."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class SigOptSweeperConf:
    """One SigOpt experiment per multirun: parameters to tune, metrics to optimise, how many trials.

    parameters: name -> {path, type: double|int|categorical, min, max, log, grid, values}; `path` is the
    config key the value is written to (e.g. train.lr), categorical `values` are override strings.
    metrics: name -> {objective: maximize|minimize, threshold, strategy: optimize|constraint|store}; a name
    is a key of the dict the task function returns.
    """

    _target_: str = "hydra_plugins.hydra_sigopt_sweeper.sigopt_sweeper.SigOptSweeper"
    driver: str = "lite"  # lite: in this process (sigoptlite); api: a SigOpt server at api_url
    api_url: str = "https://api.sigopt.com"
    token_env: str = "SIGOPT_API_TOKEN"  # the environment variable that holds the API token (never the token)
    name: str = "hydra sweep"
    # optional "module.function": called as function(config, experiment) -> experiment, to generate a recipe
    recipe: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    budget: int | None = None  # observations in all, failed ones included
    parallel_bandwidth: int = 1  # trials launched at once (one launcher batch)
    seed: int | None = None  # lite driver: observation n is drawn from numpy SeedSequence([seed, n])
    dry_run: bool = False  # print the experiment as YAML and exit without running a trial


ConfigStore.instance().store(
    group="hydra/sweeper", name="sigopt", node=SigOptSweeperConf, provider="sigopt_sweeper"
)
