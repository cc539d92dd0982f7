"""The `bluewhale` command answers configuration-only requests without the heavy imports, names itself in
`--help`, and carries its configs when installed from a wheel outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "mlflow", "sklearn", "pandas", "pyarrow")

# Runs the app's own entry point with the given arguments, then reports which heavy modules got imported.
PROBE = """
import sys
from bluewhale.app import main
try:
    main()
except SystemExit:
    pass
print("LOADED", sorted(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


def probe(args: list[str], tmp_path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    code = PROBE.format(heavy=HEAVY)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )


def loaded(result: subprocess.CompletedProcess) -> str:
    return [line for line in result.stderr.splitlines() if line.startswith("LOADED")][-1]


@pytest.mark.parametrize(
    "args",
    [["--cfg", "job"], ["--cfg", "job", "experiment=wnd_outbrain"], ["--help"], ["--info", "searchpath"]],
)
def test_configuration_commands_import_no_heavy_module(args, tmp_path):
    result = probe(args, tmp_path)
    assert loaded(result) == "LOADED []", result.stderr[-2000:]


def test_cfg_job_prints_the_composed_experiment(tmp_path):
    result = probe(["--cfg", "job", "experiment=dien_amazon"], tmp_path)
    assert "_target_: bluewhale.model.dien.DIEN" in result.stdout
    assert "stages:" in result.stdout


def test_tab_completion_answers_without_heavy_modules(tmp_path):
    result = probe(["-sc", "query=bash"], tmp_path, env={"COMP_LINE": "bluewhale experi"})
    assert "experiment=" in result.stdout
    assert loaded(result) == "LOADED []"


def test_help_names_the_app_and_guides(tmp_path):
    result = probe(["--help"], tmp_path)
    assert result.stdout.startswith("bluewhale: ")
    assert "powered by Hydra" not in result.stdout
    assert "bluewhale --cfg job" in result.stdout
    assert "experiment: " in result.stdout  # the groups and their members


@pytest.mark.slow
def test_wheel_install_outside_the_checkout_carries_the_configs(tmp_path):
    """A wheel (non-editable) installed into a folder of its own runs from another folder: the configs come
    from the package (`pkg://bluewhale.conf`), not from a checkout."""
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("bluewhale", "conf", "hydra_plugins"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, source], check=True)
    (wheel,) = wheels.glob("bluewhale-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", target, wheel], check=True)
    assert (target / "bluewhale" / "conf" / "dataset" / "movielens.yaml").is_file()
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import bluewhale.app as a; print(a.__file__, a.CONFIG_PATH)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    assert where.stdout.split() == [str(target / "bluewhale" / "app.py"), "pkg://bluewhale.conf"]
    result = probe(["--cfg", "job", "experiment=wnd_outbrain"], elsewhere, env=env)
    assert "_target_: bluewhale.model.wnd.WideAndDeep" in result.stdout
    assert loaded(result) == "LOADED []"
    composed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from bluewhale.app import compose_experiment as c; print(c(['model=dien']).model._target_)",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    assert composed.stdout.strip() == "bluewhale.model.dien.DIEN"
