"""Terraform modules and `bluewhale-cluster` without a cloud: the cloud modules are formatted, parse with an
HCL parser and declare what the issue asks; their shared bootstrap templates render with the real
Terraform binary; bad cluster configs fail before Terraform runs. (Cloud providers cannot be installed
offline, so `terraform validate` of infra/aws and infra/gcp is not run here.)"""

from __future__ import annotations

import json
import subprocess

import hcl2
import pytest
import yaml

from bluewhale.cluster import cli
from bluewhale.cluster.terraform import INFRA, REPO, cli_config, terraform_binary

CLOUD = {
    "aws": {
        "resource": {
            "aws_launch_template", "aws_autoscaling_group", "aws_instance", "aws_security_group",
            "aws_iam_role_policy",
        },
        "provider": "aws",
    },
    "gcp": {
        "resource": {
            "google_compute_instance_template", "google_compute_instance_group_manager",
            "google_compute_autoscaler", "google_compute_instance", "google_compute_firewall",
        },
        "provider": "google",
    },
}  # fmt: skip
SIZES = {"min_nodes", "max_nodes", "allowed_cidr", "name"}


def parse(module: str) -> dict[str, list]:
    """Every block of a module's .tf files, by block type, names unquoted."""
    blocks: dict[str, list] = {}
    for tf in sorted((INFRA / module).glob("*.tf")):
        with open(tf) as f:
            for kind, items in hcl2.load(f).items():
                blocks.setdefault(kind, []).extend(items if isinstance(items, list) else [items])
    return blocks


def names(items: list) -> set[str]:
    return {k.strip('"') for item in items for k in item if not k.startswith("__")}


def test_every_module_is_terraform_fmt_clean():
    r = subprocess.run(
        [terraform_binary(), "fmt", "-check", "-recursive", str(INFRA)], capture_output=True, text=True
    )
    assert r.returncode == 0, f"not formatted: {r.stdout}{r.stderr}"


@pytest.mark.parametrize("module", ["aws", "gcp"])
def test_cloud_modules_declare_the_cluster_and_its_variables_and_outputs(module):
    blocks = parse(module)
    resources = {t.strip('"') for item in blocks["resource"] for t in item}
    assert CLOUD[module]["resource"] <= resources
    assert names(blocks["provider"]) == {CLOUD[module]["provider"]}
    assert SIZES <= names(blocks["variable"])
    assert {"head_address", "nodes", "spark_master"} <= names(blocks["output"])
    text = (INFRA / module / "main.tf").read_text()
    assert (
        "var.allowed_cidr" in text and "0.0.0.0/0" not in text.split("egress")[0]
    )  # ingress: cluster + user only
    assert "var.min_nodes" in text and "var.max_nodes" in text


def test_every_cloud_size_gives_each_required_variable_of_its_module():
    for size, module in (("aws_small", "aws"), ("gcp_small", "gcp")):
        cluster = yaml.safe_load((REPO / "conf/cluster" / f"{size}.yaml").read_text())["cluster"]
        assert cluster["target"] == module
        for block in parse(module)["variable"]:
            for name, decl in block.items():
                assert name.strip('"') in cluster or "default" in decl, (
                    f"{size}: no cluster.{name.strip(chr(34))}"
                )


def test_the_bootstrap_templates_render_to_cloud_init_and_a_cloud_slurm_conf(tmp_path):
    """The real Terraform renders head and worker cloud-init and slurm.conf (no provider needed)."""
    values = {
        "name": "bw", "munge_key_b64": "a2V5", "max_nodes": 3, "cores_per_node": 8, "node_mem_mb": 14336,
        "partition": "cpu", "suspend_after_s": 300, "repo_url": "https://example.org/bw.git", "repo_ref": "main",
    }  # fmt: skip
    boot = INFRA / "bootstrap"
    root = {
        "locals": {"v": values},
        "output": {
            "slurm_conf": {"value": f'${{templatefile("{boot}/slurm.conf.tftpl", local.v)}}'},
            "head": {
                "value": f'${{templatefile("{boot}/head.yaml.tftpl", merge(local.v, {{slurm_conf = templatefile('
                f'"{boot}/slurm.conf.tftpl", local.v), resume_program = "#!/bin/sh\\nresume", '
                'suspend_program = "#!/bin/sh\\nsuspend"}))}'
            },
            "worker": {
                "value": f'${{templatefile("{boot}/worker.yaml.tftpl", merge(local.v, {{slurm_conf = "x", '
                'head_address = "10.0.0.2"}))}'
            },
        },
    }
    (tmp_path / "main.tf.json").write_text(json.dumps(root))
    env = {"TF_CLI_CONFIG_FILE": str(cli_config(tmp_path)), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for cmd in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
        r = subprocess.run([terraform_binary(), *cmd], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(
        subprocess.run(
            [terraform_binary(), "output", "-json"], cwd=tmp_path, env=env, capture_output=True, text=True
        ).stdout
    )
    conf = out["slurm_conf"]["value"]
    assert "NodeName=bw-w[1-3] CPUs=8 RealMemory=14336 State=CLOUD" in conf
    assert "ResumeProgram=/usr/local/sbin/bluewhale-resume" in conf and "SuspendTime=300" in conf
    head, worker = (yaml.safe_load(out[k]["value"]) for k in ("head", "worker"))
    files = {f["path"]: f for f in head["write_files"]}
    assert files["/etc/slurm/slurm.conf"]["content"].strip() == conf.strip()
    assert files["/usr/local/sbin/bluewhale-resume"]["content"].strip() == "#!/bin/sh\nresume"
    assert "slurmctld" in head["packages"] and "slurmd" in worker["packages"]
    assert any("spark://10.0.0.2:7077" in c for c in worker["runcmd"] if isinstance(c, str))


def plan(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(["plan", *args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "overrides, env, message",
    [
        (["cluster=aws_small", "cluster.allowed_cidr=198.51.100.7/32"], {},
         "cluster.credentials_env: AWS_ACCESS_KEY_ID is not set in the environment"),
        (["cluster=gcp_small", "cluster.allowed_cidr=198.51.100.7/32", "cluster.project=p"], {},
         "GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_CREDENTIALS is not set"),
        (["cluster=aws_small"], {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"},
         "cluster.allowed_cidr: required by infra/aws"),
        (["cluster=aws_small", "cluster.nodes=5"], {}, "cluster.nodes: 5 is above cluster.max_nodes=4; expected 1..4"),
        (["cluster=local_nodes", "cluster.nodes=0"], {}, "cluster.nodes: expected a whole number of nodes >= 1"),
        (["cluster=local_nodes", "cluster.nodes=9"], {}, "cluster.nodes: 9 is above cluster.max_nodes=8"),
        (["cluster=local_nodes", "cluster.min_nodes=3", "cluster.nodes=2"], {}, "cluster.nodes: 2 is below cluster.min_nodes=3"),
        (["cluster=local"], {}, "cluster.target: cluster=local has no Terraform target"),
    ],
)  # fmt: skip
def test_bad_cluster_configs_fail_before_terraform_runs(
    tmp_path, monkeypatch, capsys, overrides, env, message
):
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_CREDENTIALS",
    ):
        monkeypatch.delenv(name, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("BLUEWHALE_HOME", str(tmp_path))
    code, err = plan(capsys, *overrides)
    assert code == 1 and message in err, err
    assert not list(tmp_path.rglob("*.tfstate")) and not list(tmp_path.rglob(".terraform"))


def test_state_is_never_kept_inside_the_repository(tmp_path, capsys):
    code, err = plan(capsys, "cluster=local_nodes", "--state-dir", str(REPO / "state"))
    assert code == 1 and "is inside the repository" in err
    assert not (REPO / "state").exists()
