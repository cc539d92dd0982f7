"""The `bluewhale` command: a Hydra app that composes the experiment config and runs its stages."""

from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from bluewhale.pipeline import run

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")  # the checkout's conf/ (editable install)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> dict[str, float]:
    return run(cfg)


def compose_experiment(overrides: list[str] | None = None) -> DictConfig:
    """The config `bluewhale <overrides>` would run, from Hydra's compose API (for notebooks and scripts):
    `run(compose_experiment(["experiment=dien_amazon"]))` runs it in this process."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=list(overrides or []), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # so `${hydra:runtime.cwd}` and the tracked overrides resolve
    with open_dict(cfg):
        del cfg["hydra"]  # as the app's own config: the job's keys only
    return cfg


if __name__ == "__main__":
    main()
