"""Checks on a `cluster` config that must pass before anything is provisioned or launched.

Each failure names the config key and what was expected: more ranks than rows per batch, a node count
outside [min_nodes, max_nodes], a Slurm partition the cluster does not have, a cloud credential missing
from the environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from hydra.experimental.callback import Callback


class ClusterConfigError(ValueError):
    """A `cluster` setting that cannot work; the message names the key and what was expected."""


def ranks(cluster: Mapping[str, Any]) -> int:
    """Training ranks a job has: nodes x ranks per node (Slurm tasks per node, or local ranks per node)."""
    per_node = cluster.get("tasks_per_node") or cluster.get("ranks_per_node") or 1
    return int(cluster.get("nodes") or 1) * int(per_node)


def check_sizes(cluster: Mapping[str, Any], batch_size: int | None = None) -> None:
    """Node counts within their bounds, and at least one row of every batch for each rank."""
    nodes = cluster.get("nodes")
    if not isinstance(nodes, int) or nodes < 1:
        raise ClusterConfigError(f"cluster.nodes: expected a whole number of nodes >= 1, got {nodes!r}")
    low, high = cluster.get("min_nodes"), cluster.get("max_nodes")
    if low is not None and (not isinstance(low, int) or low < 0):
        raise ClusterConfigError(f"cluster.min_nodes: expected a whole number >= 0, got {low!r}")
    if high is not None and (not isinstance(high, int) or high < max(1, low or 0)):
        raise ClusterConfigError(
            f"cluster.max_nodes: expected a whole number >= max(1, cluster.min_nodes={low}), got {high!r}"
        )
    if low is not None and nodes < low and cluster.get("target") == "local":
        raise ClusterConfigError(
            f"cluster.nodes: {nodes} is below cluster.min_nodes={low}; expected {low}..{high}"
        )
    if high is not None and nodes > high:
        raise ClusterConfigError(
            f"cluster.nodes: {nodes} is above cluster.max_nodes={high}; expected {low or 1}..{high}"
        )
    for key in ("tasks_per_node", "ranks_per_node", "cpus_per_task"):
        value = cluster.get(key)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ClusterConfigError(f"cluster.{key}: expected a whole number >= 1, got {value!r}")
    if batch_size is not None and ranks(cluster) > int(batch_size):
        per_node = "tasks_per_node" if cluster.get("tasks_per_node") else "ranks_per_node"
        raise ClusterConfigError(
            f"cluster.{per_node}: {ranks(cluster)} ranks (cluster.nodes={nodes} x cluster.{per_node}="
            f"{cluster.get(per_node) or 1}) but train.batch_size={batch_size} rows a batch; expected at most "
            f"{batch_size} ranks, so that every rank gets rows of every batch"
        )


def slurm_partitions(env: Mapping[str, str] | None = None) -> list[str] | None:
    """The partitions the reachable Slurm has (`sinfo`), or None where no Slurm client is installed."""
    if shutil.which("sinfo") is None:
        return None
    r = subprocess.run(
        ["sinfo", "-h", "-o", "%R"],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    if r.returncode != 0:
        raise ClusterConfigError(f"cluster: cannot reach Slurm (sinfo failed: {r.stderr.strip()})")
    return sorted({line.strip() for line in r.stdout.splitlines() if line.strip()})


def check_partition(cluster: Mapping[str, Any]) -> None:
    """`cluster.partition` exists on the Slurm that `sinfo` reaches (skipped where none is reachable)."""
    partition = cluster.get("partition")
    if not partition or cluster.get("target") not in (None, "local"):
        return  # the default partition, or a cloud cluster's own (made by its Terraform module)
    known = slurm_partitions()
    if known is not None and partition not in known:
        raise ClusterConfigError(
            f"cluster.partition: unknown partition {partition!r}; expected one of {known} (sinfo)"
        )


def check_credentials(cluster: Mapping[str, Any], env: Mapping[str, str] | None = None) -> None:
    """Every variable in `cluster.credentials_env` is set ("A|B": either); values are never read here."""
    env = os.environ if env is None else env
    for entry in cluster.get("credentials_env") or []:
        names = str(entry).split("|")
        if not any(env.get(n) for n in names):
            raise ClusterConfigError(
                f"cluster.credentials_env: {' or '.join(names)} is not set in the environment; expected the "
                f"{cluster.get('target')} credential there (bluewhale never reads or writes it anywhere else)"
            )


def check_launch(cluster: Mapping[str, Any], batch_size: int | None = None) -> None:
    """All checks a launch needs (sizes, partition)."""
    check_sizes(cluster, batch_size)
    check_partition(cluster)


class LaunchCheck(Callback):
    """Hydra callback of `cluster=slurm` and its cloud sizes: checks the cluster when Hydra builds its
    callbacks, before the sweep's parent run, the sweeper or any job submission (a failure stops the launch;
    Hydra would only warn about an exception raised from a callback hook)."""

    def __init__(self, cluster: Mapping[str, Any], batch_size: int | None = None) -> None:
        check_launch(cluster, batch_size)
