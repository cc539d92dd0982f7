"""`bluewhale-cluster plan|up|down|status [--yes] [overrides...]`: a cluster's life from its `cluster` config.

The overrides are the `bluewhale` command's (e.g. `cluster=aws_small cluster.allowed_cidr=198.51.100.7/32`).
The config is checked (node bounds, credentials in the environment) before Terraform runs; `up` shows the
plan and applies it only with `--yes`, and destroys what a failed apply made; `down` destroys (with
`--yes`); state lives in `$BLUEWHALE_HOME/clusters/<cluster.name>` (default ~/.bluewhale), never in the repo.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from bluewhale.cluster.checks import ClusterConfigError, check_credentials, check_sizes
from bluewhale.cluster.terraform import REPO, TerraformError, Workspace
from bluewhale.cluster.tfvars import render


def state_root() -> Path:
    return Path(os.environ.get("BLUEWHALE_HOME") or Path.home() / ".bluewhale") / "clusters"


def cluster_config(overrides: list[str]) -> dict[str, Any]:
    """The `cluster` section of the config `bluewhale <overrides>` would run, resolved."""
    from bluewhale.app import compose_experiment

    cfg = compose_experiment(overrides)
    cluster = OmegaConf.to_container(cfg.cluster, resolve=True)
    cluster["_batch_size"] = cfg.train.batch_size
    return cluster


def workspace(cluster: dict[str, Any], state_dir: Path | None) -> Workspace:
    """Checks the config, then the cluster's state folder (outside the repo) with its Terraform files."""
    if not cluster.get("target"):
        raise ClusterConfigError(
            f"cluster.target: cluster={cluster.get('name')} has no Terraform target (null); expected a cluster "
            "with one, e.g. cluster=local_nodes, cluster=aws_small or cluster=gcp_small"
        )
    check_sizes(cluster, cluster.pop("_batch_size", None))
    check_credentials(cluster)
    folder = (state_dir or state_root() / str(cluster["name"])).resolve()
    if folder.is_relative_to(REPO):
        raise ClusterConfigError(
            f"--state-dir: {folder} is inside the repository {REPO}; expected a folder outside it"
        )
    ws = Workspace(folder, cluster["target"])
    ws.write(render(cluster, ws.variables, folder))
    return ws


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bluewhale-cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["plan", "up", "down", "status"])
    parser.add_argument("overrides", nargs="*", help="config overrides, as for `bluewhale`")
    parser.add_argument("--yes", action="store_true", help="apply (up) or destroy (down) without asking")
    parser.add_argument("--state-dir", type=Path, help="the cluster's Terraform state folder")
    args = parser.parse_args(argv)
    try:
        ws = workspace(cluster_config(args.overrides), args.state_dir)
        return ACTIONS[args.action](ws, args.yes)
    except (ClusterConfigError, TerraformError) as e:
        print(f"bluewhale-cluster: {e}", file=sys.stderr)
        return 1


def plan(ws: Workspace, yes: bool) -> int:
    ws.init()
    print(ws.plan())
    return 0


def up(ws: Workspace, yes: bool) -> int:
    plan(ws, yes)
    if not yes:
        print(f"Nothing applied: run again with --yes to apply this plan (state: {ws.dir}).")
        return 0
    try:
        print(ws.apply())
    except TerraformError as failed:
        print("bluewhale-cluster: the apply failed; destroying what it made", file=sys.stderr)
        try:
            ws.destroy()
        except TerraformError as also:
            raise TerraformError(f"{failed}\n... and the destroy after it failed too:\n{also}") from failed
        raise
    return status(ws, yes)


def down(ws: Workspace, yes: bool) -> int:
    if not yes:
        ws.init()
        print(ws.plan(destroy=True))
        print(f"Nothing destroyed: run again with --yes to destroy (state: {ws.dir}).")
        return 0
    ws.init()
    print(ws.destroy())
    return 0


def status(ws: Workspace, yes: bool) -> int:
    ws.init()
    print(json.dumps({"state": str(ws.dir), "resources": ws.resources(), "outputs": ws.output()}, indent=2))
    return 0


ACTIONS = {"plan": plan, "up": up, "down": down, "status": status}


if __name__ == "__main__":
    sys.exit(main())
