"""The `bluewhale` command: a Hydra app that composes the experiment config and runs its stages."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from bluewhale.pipeline import run

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")  # the checkout's conf/ (editable install)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> dict[str, float]:
    return run(cfg)


if __name__ == "__main__":
    main()
