"""A tiny Hydra app with a cheap objective and a known optimum, for the SigOpt sweeper's tests.

score = 1 - (x - 0.3)^2 - (y + 0.2)^2 (best 1.0 at x=0.3, y=-0.2); cost rises with k. Jobs whose x is above
`fail.above` fail the way `fail.mode` says: raise, nan_score, missing, or kill (SIGKILL to its own process).
"""

import json
import os
import signal
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    hydra_cfg = HydraConfig.get()
    with (Path(hydra_cfg.sweep.dir) / "calls.jsonl").open("a") as out:  # which jobs really ran, and how often
        out.write(json.dumps({"job": hydra_cfg.job.num, "x": cfg.x, "pid": os.getpid()}) + "\n")
    time.sleep(cfg.sleep)
    score = 1 - (cfg.x - 0.3) ** 2 - (cfg.y + 0.2) ** 2
    if cfg.fail.mode != "none" and cfg.x > cfg.fail.above:
        if cfg.fail.mode == "raise":
            raise RuntimeError("planted failure")
        if cfg.fail.mode == "nan_score":
            score = float("nan")
        if cfg.fail.mode == "missing":
            return {"cost": float(cfg.k)}
        if cfg.fail.mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
    return {"score": score, "cost": float(cfg.k) + abs(cfg.x)}


if __name__ == "__main__":
    main()
