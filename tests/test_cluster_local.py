"""The `local` Terraform target through `bluewhale-cluster`: the real Terraform binary and null provider
start a Spark standalone master and N workers on 127.0.0.1, scale them by re-applying with another N, run a
Spark job, and stop them all on `down`; a failed apply is destroyed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from bluewhale.cluster.local_slurm import free_port

pytestmark = pytest.mark.slow

CLI = [str(Path(sys.executable).parent / "bluewhale-cluster")]


def cluster(action: str, home: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "BLUEWHALE_HOME": str(home)}
    r = subprocess.run(
        [*CLI, action, "cluster=local_nodes", *overrides],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and r.returncode != 0:
        raise AssertionError(f"bluewhale-cluster {action} failed:\n{r.stdout}\n{r.stderr}")
    return r


def alive_workers(ui_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=10) as r:
        return json.load(r)["aliveworkers"]


def daemons(home: Path, kinds: tuple[str, ...] = ("java", "munged", "slurmctld", "slurmd")) -> list[int]:
    """This cluster's daemons still running (Spark's Java, Slurm's): processes started in its state folder."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() in kinds:
                if os.readlink(proc / "cwd").startswith(str(home)):
                    found.append(int(proc.name))
        except OSError:  # gone meanwhile
            continue
    return found


def slurm_nodes(conf: str) -> list[str]:
    """`sinfo`'s idle nodes of the local cluster's Slurm."""
    r = subprocess.run(
        ["sinfo", "-h", "-N", "-t", "idle", "-o", "%N"], env={**os.environ, "SLURM_CONF": conf},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return sorted(r.stdout.split())


def outputs(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stdout[result.stdout.rindex('{\n  "state"') :])


@pytest.fixture
def stopped(tmp_path):
    """Whatever a failing test leaves running in its cluster is stopped after it."""
    yield
    for pid in daemons(tmp_path):
        os.kill(pid, signal.SIGTERM)


def test_apply_scales_up_and_down_runs_a_spark_job_and_destroy_stops_everything(tmp_path, stopped):
    ports = [f"cluster.master_port={free_port()}", f"cluster.master_webui_port={(ui := free_port())}"]
    plan = cluster("up", tmp_path, "cluster.nodes=1", *ports)  # no --yes: a plan, nothing applied
    assert "Plan: 3 to add" in plan.stdout and "run again with --yes" in plan.stdout and not daemons(tmp_path)

    up = outputs(cluster("up", tmp_path, "cluster.nodes=1", *ports, "--yes"))
    assert up["outputs"]["nodes"] == ["worker-1"] and alive_workers(ui) == 1
    assert not str(up["state"]).startswith(str(Path(__file__).resolve().parents[1]))  # state outside the repo
    master, conf = up["outputs"]["spark_master"], up["outputs"]["slurm_conf"]
    assert len(slurm_nodes(conf)) == 1

    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(master)
        .appName("bluewhale-local-cluster-test")
        .config("spark.executor.memory", "512m")
        # this may be the test process's first Spark session: its driver heap is every later session's
        # (spark.driver.memory applies only when the JVM starts), and the engine tests need the engine's 4g
        .config("spark.driver.memory", "4g")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    try:
        assert spark.range(10_000, numPartitions=4).selectExpr("sum(id) AS s").collect()[0].s == 49_995_000
        executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size()  # driver + executors
        assert executors >= 2
    finally:
        spark.stop()

    bigger = outputs(cluster("up", tmp_path, "cluster.nodes=2", *ports, "--yes"))
    assert bigger["outputs"]["nodes"] == ["worker-1", "worker-2"] and alive_workers(ui) == 2
    assert len(slurm_nodes(conf)) == 2
    smaller = outputs(cluster("up", tmp_path, "cluster.nodes=1", *ports, "--yes"))
    assert smaller["outputs"]["nodes"] == ["worker-1"] and alive_workers(ui) == 1
    assert len(daemons(tmp_path, ("java",))) == 2 and len(slurm_nodes(conf)) == 1  # master + one worker

    cluster("down", tmp_path, "cluster.nodes=1", *ports, "--yes")
    assert not daemons(tmp_path)
    status = outputs(cluster("status", tmp_path, "cluster.nodes=1", *ports))
    assert status["resources"] == [] and status["outputs"] == {}


def test_a_failed_apply_is_destroyed_not_left_half_made(tmp_path, stopped):
    ports = [f"cluster.master_port={free_port()}", f"cluster.master_webui_port={free_port()}"]
    r = cluster("up", tmp_path, "cluster.nodes=1", "cluster.worker_memory=lots", *ports, "--yes", check=False)
    assert r.returncode == 1
    assert "the apply failed; destroying what it made" in r.stderr and "Worker 1 exited" in r.stderr
    assert not daemons(tmp_path)  # the master that did start is stopped again
    status = outputs(cluster("status", tmp_path, "cluster.nodes=1", *ports))
    assert status["resources"] == []
