"""bluewhale on a real one-machine Slurm (slurmctld, two slurmd node entries, munge) through submitit.

The fixture starts the daemons in a temp folder and stops them after; every job of the module shares one
working folder, so they share the MLflow sqlite file and the data folder, as jobs on a cluster share a
filesystem.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from bluewhale.cluster.checks import ClusterConfigError
from bluewhale.cluster.local_slurm import LocalSlurm
from tests.conftest import compose_config, run_bluewhale, runs

pytestmark = pytest.mark.slow

SMALL = ["dataset.rows=20000", "tracking.log_model=false", "cluster.mem_gb=1", "cluster.cpus_per_task=1"]


@pytest.fixture(scope="module")
def slurm():
    folder = tempfile.mkdtemp(prefix="bw-slurm-")  # short: munge's socket path must fit a sockaddr_un
    before = os.environ.get("SLURM_CONF")
    with LocalSlurm(Path(folder) / "slurm", nodes=2, cpus=2) as cluster:
        os.environ.update(cluster.env())
        try:
            yield cluster
        finally:
            os.environ.pop("SLURM_CONF") if before is None else os.environ.update(SLURM_CONF=before)


@pytest.fixture(scope="module")
def shared(slurm) -> Path:
    """The working folder every job of this module shares (data, processed cache, mlflow.db)."""
    return Path(tempfile.mkdtemp(prefix="bw-slurm-work-"))


def task_logs(folder: Path, kind: str = "out") -> list[Path]:
    """submitit's per-task logs (`out` or `err`; `*` both) under the sweep folders: one per task of each job."""
    return sorted(folder.glob(f"multirun/**/.submitit/*/*_log.{kind}"))


def slurm_logs(folder: Path) -> list[str]:
    return [p.read_text() for p in task_logs(folder)]


def submit(shared: Path, *overrides: str) -> None:
    """`bluewhale <overrides>` from the shared folder; a failure shows every task's log, where a rank that
    hung or died says why (the command's own output names only the rank that gave up)."""
    result = run_bluewhale(shared, *overrides, check=False)
    if result.returncode != 0:
        tails = "\n".join(
            f"--- {p.relative_to(shared)}\n{p.read_text()[-3000:]}" for p in task_logs(shared, "*")
        )
        raise AssertionError(f"bluewhale {' '.join(overrides)} failed:\n{result.stderr[-3000:]}\n{tails}")


def test_a_two_task_training_job_trains_on_two_ranks_as_one_slurm_job(slurm, shared):
    submit(shared, "cluster=slurm", "cluster.tasks_per_node=2", *SMALL, "hydra.sweep.dir=multirun/job/train")
    logs = slurm_logs(shared)
    ranks = sorted(re.findall(r"JobEnvironment\(job_id=(\d+), .*global_rank=(\d)\(2\)\)", "\n".join(logs)))
    assert len(ranks) == 2 and ranks[0][0] == ranks[1][0] and {r for _, r in ranks} == {"0", "1"}, logs
    assert all("Job completed successfully" in log for log in logs)
    child = [r for r in runs(shared) if r.data.tags.get("bluewhale.role") != "sweep"]
    assert len(child) == 1 and child[0].info.status == "FINISHED"  # rank 0 alone logs
    assert child[0].data.params["cluster.name"] == "slurm" and child[0].data.metrics["world_size"] == 2
    assert child[0].data.metrics["test_auc"] > 0.6


def test_a_two_trial_sweep_runs_one_slurm_job_a_trial(slurm, shared):
    before = {r.info.run_id for r in runs(shared)}
    submit(shared, "-m", "cluster=slurm", *SMALL, "model.embedding_dim=4,8", "hydra.sweep.dir=multirun/s/w")
    new = [r for r in runs(shared) if r.info.run_id not in before]
    parent = [r for r in new if r.data.tags.get("bluewhale.role") == "sweep"]
    children = [r for r in new if r.data.tags.get("bluewhale.role") != "sweep"]
    assert len(parent) == 1 and len(children) == 2
    assert {r.data.params["model.embedding_dim"] for r in children} == {"4", "8"}
    assert all(r.info.status == "FINISHED" and r.data.tags["mlflow.parentRunId"] == parent[0].info.run_id
               for r in children)  # fmt: skip
    jobs = {p.parent.name for p in (shared / "multirun/s/w/.submitit").glob("*/*_result.pkl")}
    assert len(jobs) == 2  # two Slurm jobs (an array of two), each with its result
    assert all(r.data.tags.get("bluewhale.cache") == "hit" for r in children)  # the first test's data


def test_a_cluster_the_jobs_cannot_use_fails_before_anything_is_submitted(slurm, tmp_path):
    result = run_bluewhale(tmp_path, "cluster=slurm", *SMALL, "cluster.partition=gpu", check=False)
    assert result.returncode != 0
    assert "cluster.partition: unknown partition 'gpu'; expected one of ['debug']" in result.stderr, (
        result.stderr
    )
    assert not list(tmp_path.glob("multirun/**/.submitit")) and not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["cluster.tasks_per_node=4", "train.batch_size=2"],
            "4 ranks (cluster.nodes=1 x cluster.tasks_per_node=4)",
        ),
        (["cluster.nodes=0"], "cluster.nodes: expected a whole number of nodes >= 1, got 0"),
        (["cluster.cpus_per_task=0"], "cluster.cpus_per_task: expected a whole number >= 1, got 0"),
    ],
)
def test_the_launch_check_names_the_key_at_fault(overrides, message):
    """The callback Hydra builds before the sweep starts (the command above shows it stops the launch)."""
    cfg = compose_config("cluster=slurm", *overrides)
    with pytest.raises(InstantiationException, match=re.escape(message)) as raised:
        instantiate(cfg.hydra.callbacks.cluster_check)
    assert isinstance(raised.value.__cause__, ClusterConfigError)


def test_a_sigopt_sweep_runs_its_trials_as_slurm_jobs(slurm, shared):
    folder = shared / "multirun/sigopt"
    submit(
        shared, "-m", "cluster=slurm", "advisor=sigopt", "advisor.budget=2", "advisor.seed=0", *SMALL,
        "+advisor.parameters.batch_size=null", "+advisor.parameters.threads=null", f"hydra.sweep.dir={folder}",
    )  # fmt: skip
    observed = [json.loads(line) for line in (folder / "sigopt_observations.jsonl").read_text().splitlines()]
    assert len(observed) == 2 and not any(o["failed"] for o in observed), observed
    assert all(o["values"]["test_auc"] > 0.6 for o in observed)
    assert len(list(folder.glob(".submitit/*/*_result.pkl"))) == 2  # each trial a Slurm job
