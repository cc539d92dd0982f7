"""The deployment kit, read as text (no Docker daemon here to build it): the Dockerfile builds with the
`make setup` CI runs and runs `make run` by default, bakes in no secrets, and its context leaves out local
state; the cluster configs name every launcher resource the issue lists."""

from __future__ import annotations

import re

from bluewhale.cluster.terraform import REPO
from tests.conftest import compose_config


def test_the_container_builds_with_make_setup_runs_make_run_and_holds_no_secrets():
    text = (REPO / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert "RUN make setup" in instructions
    assert instructions[-1] == 'CMD ["make", "run"]'
    assert not re.search(r"(?i)^(ENV|ARG)\s+\S*(PASSWORD|SECRET|TOKEN|KEY)", text, re.M)
    assert re.search(r"^USER \w+", text, re.M)  # not root at run time
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", "mlflow.db", "**/*.tfstate*", ".git"} <= set(ignored)


def test_slurm_member_sets_the_launcher_resources_from_the_cluster_keys():
    cfg = compose_config(
        "cluster=slurm",
        "cluster.nodes=2",
        "cluster.tasks_per_node=3",
        "cluster.partition=debug",
        "cluster.mem_gb=7",
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.partition, launcher.mem_gb) == (
        2,
        3,
        "debug",
        7,
    )
    assert (launcher.cpus_per_task, launcher.timeout_min) == (
        cfg.cluster.cpus_per_task,
        cfg.cluster.timeout_min,
    )
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"  # a plain `bluewhale cluster=slurm` is submitted too
    sigopt = compose_config("cluster=slurm", "advisor=sigopt")
    assert sigopt.hydra.sweeper._target_.endswith("SigOptSweeper") and sigopt.hydra.launcher.nodes == 1
