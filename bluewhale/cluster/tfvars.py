"""Terraform variables from the composed `cluster` config: each variable the target module declares takes
the `cluster` key of the same name; a target may add values only known on this machine (the local
target's Spark installation and run folder). Credentials are never variables: providers read them from
the environment."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bluewhale.cluster.checks import ClusterConfigError


def local_values(state_dir: Path) -> dict[str, Any]:
    """The local target's machine-specific values: pyspark's Spark home, a run folder in the state folder,
    this Python (it starts the local Slurm)."""
    import pyspark

    return {
        "spark_home": str(Path(pyspark.__file__).parent),
        "run_dir": str(Path(state_dir) / "run"),
        "python": sys.executable,
    }


MACHINE_VALUES = {"local": local_values}


def render(
    cluster: Mapping[str, Any], variables: Mapping[str, Mapping[str, Any]], state_dir: Path
) -> dict[str, Any]:
    """tfvars for the target's `variables`; a required one missing from the config names its key."""
    target = cluster["target"]
    values = {**MACHINE_VALUES.get(target, lambda _: {})(state_dir), **{k: v for k, v in cluster.items()}}
    tfvars = {}
    for name, decl in variables.items():
        value = values.get(name)
        if value is None:
            if "default" not in decl:
                what = decl.get("description") or f"a {decl.get('type', 'value')}"
                raise ClusterConfigError(
                    f"cluster.{name}: required by infra/{target} (variable {name!r}: {what}); got null"
                )
            continue  # the module's default
        tfvars[name] = value
    return tfvars
