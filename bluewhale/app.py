"""The `bluewhale` command: a Hydra app that composes the experiment config and runs its stages.

Importing this module stays light (Hydra and OmegaConf only): the pipeline, and with it torch, MLflow and
scikit-learn, is imported inside `main` when a stage runs, so `--cfg job`, `--help` and tab completion
answer at once.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

CONF_MODULE = "bluewhale.conf"  # conf/ as shipped inside the package (setup.py maps it there)


def conf_dir() -> str | None:
    """The checkout's conf/ when running from a checkout (an editable install), else None: an installed
    package reads the copy it carries (`pkg://bluewhale.conf`)."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "conf" / "config.yaml").is_file():
        return str(root / "conf")
    return None


CONF_DIR = conf_dir()  # absolute, as Hydra's initialize_config_dir wants it; None in an installed package
CONFIG_PATH = CONF_DIR or f"pkg://{CONF_MODULE}"


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
def main(cfg: DictConfig) -> dict[str, float]:
    from bluewhale.pipeline import run  # heavy (torch, MLflow): only when a stage runs

    return run(cfg)


def compose_experiment(overrides: list[str] | None = None) -> DictConfig:
    """The config `bluewhale <overrides>` would run, from Hydra's compose API (for notebooks and scripts):
    `run(compose_experiment(["experiment=dien_amazon"]))` runs it in this process."""
    init = (
        initialize_config_dir(config_dir=CONF_DIR, version_base="1.3")
        if CONF_DIR
        else initialize_config_module(config_module=CONF_MODULE, version_base="1.3")
    )
    with init:
        cfg = compose("config", overrides=list(overrides or []), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # so `${hydra:runtime.cwd}` and the tracked overrides resolve
    with open_dict(cfg):
        del cfg["hydra"]  # as the app's own config: the job's keys only
    return cfg


if __name__ == "__main__":
    main()
