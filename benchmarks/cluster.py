"""Cluster timings on this machine, side by side in one run (the machine is shared and noisy):

1. the local Terraform target (`bluewhale-cluster ... cluster=local_nodes`): seconds from `up --yes` to a
   usable cluster (Spark master leading, every worker registered: the apply returns only then, and the
   master's JSON is checked), to scale it up by one worker and down by two, and to destroy it;
2. a 2-trial sweep's wall time through submitit on a real one-machine Slurm (two node entries: the
   trials run at once) against Hydra's basic launcher (one after the other, in process), on the same
   processed data (a warm-up run fills the cache first).

    .venv/bin/python benchmarks/cluster.py            # writes benchmarks/results/cluster.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bluewhale.atomic import write_json_atomically
from bluewhale.cluster.local_slurm import LocalSlurm, free_port

BIN = Path(sys.executable).parent
RESULTS = Path(__file__).parent / "results" / "cluster.json"


def timed(argv: list[str], **kw) -> float:
    start = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return time.perf_counter() - start


def alive(ui: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=10) as r:
        return json.load(r)["aliveworkers"]


def local_cluster(home: Path, nodes: int) -> dict[str, float]:
    ui = free_port()
    ports = [f"cluster.master_port={free_port()}", f"cluster.master_webui_port={ui}"]
    env = {**os.environ, "BLUEWHALE_HOME": str(home)}

    def cluster(action: str, n: int) -> float:
        yes = ["--yes"] if action in ("up", "down") else []
        return timed(
            [
                str(BIN / "bluewhale-cluster"),
                action,
                "cluster=local_nodes",
                f"cluster.nodes={n}",
                *ports,
                *yes,
            ],
            env=env,
        )

    out = {"up_to_usable_s": cluster("up", nodes)}
    assert alive(ui) == nodes
    out["scale_up_by_1_s"] = cluster("up", nodes + 1)
    assert alive(ui) == nodes + 1
    out["scale_down_by_2_s"] = cluster("up", nodes - 1)
    assert alive(ui) == nodes - 1
    out["destroy_s"] = cluster("down", nodes - 1)
    out["plan_only_s"] = cluster("plan", nodes)  # init + plan, nothing applied: the fixed cost in each step
    return out


def sweeps(work: Path, rows: int) -> dict[str, float]:
    common = [f"dataset.rows={rows}", "tracking.log_model=false", "cluster.threads=1"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    bw = str(BIN / "bluewhale")
    with LocalSlurm(tempfile.mkdtemp(prefix="bw-slurm-"), nodes=2, cpus=2) as slurm:
        env |= slurm.env()
        timed([bw, *common], cwd=work, env=env)  # warm-up: data and processed cache for both arms
        basic = timed(
            [bw, "-m", *common, "model.embedding_dim=4,8", "hydra.sweep.dir=multirun/basic"],
            cwd=work,
            env=env,
        )
        on_slurm = timed(
            [bw, "-m", "cluster=slurm", *common, "cluster.cpus_per_task=1", "cluster.mem_gb=1",
             "model.embedding_dim=4,8", "hydra.sweep.dir=multirun/slurm"],
            cwd=work, env=env,
        )  # fmt: skip
    return {"basic_launcher_s": basic, "slurm_submitit_s": on_slurm, "slurm_over_basic": on_slurm / basic}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bw-bench-") as tmp:
        local = local_cluster(Path(tmp) / "home", args.nodes)
        work = Path(tmp) / "work"
        work.mkdir()
        sweep = sweeps(work, args.rows)
    result = {
        "machine": {"cores": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "local_cluster": {"nodes": args.nodes, **local},
        "sweep_2_trials": {"rows": args.rows, **sweep},
    }
    write_json_atomically(RESULTS, result)
    print(f"{'local cluster (Terraform)':<34}seconds")
    for k, v in local.items():
        print(f"  {k:<32}{v:7.1f}")
    print(f"{'2-trial sweep':<34}seconds")
    for k, v in sweep.items():
        print(f"  {k:<32}{v:7.2f}")
    print(f"load average before/after: {load_before} / {os.getloadavg()}")


if __name__ == "__main__":
    main()
