"""The SigOpt sweeper (`hydra/sweeper=sigopt`) on a tiny Hydra app with a known optimum: it finds it, reports
failed and killed trials as failed observations and goes on, restarts a killed sweep without losing or
repeating observations, draws each suggestion from (seed, observation number), and refuses bad recipes before
any trial runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy
import pytest
import yaml
from omegaconf import OmegaConf

from hydra_plugins.hydra_sigopt_sweeper._experiment import config_has
from hydra_plugins.hydra_sigopt_sweeper._optimizer import LiteOptimizer

APP = str(Path(__file__).parent / "sigopt_app" / "app.py")


def sweep(folder: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the test app as a SigOpt multirun whose sweep folder is `folder`."""
    args = [sys.executable, APP, "-m", "hydra/sweeper=sigopt", f"hydra.sweep.dir={folder}", *overrides]
    result = subprocess.run(args, cwd=folder.parent, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"sweep failed:\n{result.stdout}\n{result.stderr}")
    return result


def journal(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "sigopt_observations.jsonl").read_text().splitlines()]


def calls(folder: Path) -> list[dict]:
    path = folder / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def score(x: float, y: float) -> float:
    return 1 - (x - 0.3) ** 2 - (y + 0.2) ** 2


@pytest.mark.slow
def test_sweep_gets_close_to_the_known_optimum_and_records_every_observation(tmp_path):
    folder = tmp_path / "sweep"
    sweep(folder, "hydra.sweeper.budget=10")
    observed = journal(folder)
    assert [o["job"] for o in observed] == list(range(10))
    for o in observed:
        assert o["values"]["score"] == pytest.approx(score(o["assignments"]["x"], o["assignments"]["y"]))
    summary = json.loads((folder / "sigopt_summary.json").read_text())
    best = max(observed, key=lambda o: o["values"]["score"])
    assert summary["best"] == [{k: best[k] for k in ("job", "assignments", "values")}]
    # the first five are SigOpt's random start; its model-based suggestions must then close in on (0.3, -0.2)
    assert best["values"]["score"] > 0.98
    assert max(o["values"]["score"] for o in observed[:5]) < best["values"]["score"]
    assert sorted(c["job"] for c in calls(folder)) == list(range(10)), "each trial ran once"


@pytest.mark.parametrize("mode", ["raise", "nan_score", "missing"])
def test_a_failing_trial_is_a_failed_observation_and_the_sweep_goes_on(tmp_path, mode):
    folder = tmp_path / "sweep"
    result = sweep(folder, "hydra.sweeper.budget=5", f"fail.mode={mode}", "fail.above=0.5")
    observed = journal(folder)
    assert len(observed) == 5
    failed = [o for o in observed if o["failed"]]
    assert [o["assignments"]["x"] > 0.5 for o in observed] == [o["failed"] for o in observed]
    assert failed, "seed 0 puts a point above x=0.5 in the first five"
    expected = {
        "raise": "RuntimeError: planted failure",
        "nan_score": "'score' is nan",
        "missing": "'score' is missing",
    }[mode]
    assert all(expected in o["reason"] for o in failed)
    assert all(o["values"] is None for o in failed)
    assert "reported to SigOpt as a failed observation" in result.stdout
    summary = json.loads((folder / "sigopt_summary.json").read_text())
    assert summary["failed_observations"] == len(failed)


@pytest.mark.slow
def test_submitit_runs_two_trials_at_once_and_a_killed_trial_is_a_failed_observation(tmp_path):
    folder = tmp_path / "sweep"
    sweep(
        folder,
        "hydra/launcher=submitit_local",
        "hydra.sweeper.parallel_bandwidth=2",
        "hydra.sweeper.budget=6",
        "fail.mode=kill",
        "fail.above=0.5",
    )
    observed = journal(folder)
    assert [o["job"] for o in observed] == list(range(6))
    killed = [o for o in observed if o["failed"]]
    assert killed and [o["failed"] for o in observed] == [o["assignments"]["x"] > 0.5 for o in observed]
    assert all("killed" in o["reason"] for o in killed)
    ran = calls(folder)
    assert len({c["pid"] for c in ran}) == 6, "each trial ran in its own process"
    # two at a time: both jobs of a batch got different suggestions
    for first in range(0, 6, 2):
        assert observed[first]["assignments"] != observed[first + 1]["assignments"]


@pytest.mark.slow
def test_a_killed_sweep_restarts_from_its_folder_without_losing_or_repeating_observations(tmp_path):
    folder = tmp_path / "sweep"
    args = [
        sys.executable,
        APP,
        "-m",
        "hydra/sweeper=sigopt",
        f"hydra.sweep.dir={folder}",
        "hydra.sweeper.budget=8",
        "sleep=0.5",
    ]
    process = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    observations = folder / "sigopt_observations.jsonl"
    deadline = time.monotonic() + 300
    while not (observations.exists() and len(observations.read_text().splitlines()) >= 3):
        assert process.poll() is None and time.monotonic() < deadline, (
            "the sweep ended before it could be killed"
        )
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = journal(folder)
    assert 3 <= len(before) < 8

    sweep(folder, "hydra.sweeper.budget=8", "sleep=0.5")
    after = journal(folder)
    assert len(after) == 8
    assert after[: len(before)] == before, "finished observations are kept as they were"
    jobs = [o["job"] for o in after]
    assert len(set(jobs)) == 8
    ran = [c["job"] for c in calls(folder)]
    assert all(ran.count(job) == 1 for job in jobs), "no observed trial ran twice"
    interrupted = set(ran) - set(jobs)  # started before the kill, never observed: its number is not reused
    assert len(interrupted) <= 1 and all(job < min(jobs[len(before) :]) for job in interrupted)
    assert len({(o["assignments"]["x"], o["assignments"]["y"]) for o in after}) == 8

    # the folder belongs to its recipe: another one is refused
    refused = sweep(folder, "hydra.sweeper.budget=8", "hydra.sweeper.parameters.x.max=0.5", check=False)
    assert refused.returncode != 0
    assert "holds observations of another recipe (parameters differ)" in refused.stderr


# The app's recipe as SigOpt's experiment body: two doubles, one metric (its random start is the first 5).
BODY = {
    "name": "seeds",
    "type": "offline",
    "parameters": [
        {"name": "x", "type": "double", "bounds": {"min": -1.0, "max": 1.0}},
        {"name": "y", "type": "double", "bounds": {"min": -1.0, "max": 1.0}},
    ],
    "metrics": [{"name": "score", "objective": "maximize", "strategy": "optimize"}],
    "observation_budget": 7,
    "parallel_bandwidth": 1,
}


def lite_sweep(
    seed: int | None, budget: int, journal: list[dict] | None = None, batch: int = 1
) -> list[dict]:
    """The lite optimizer's loop as the sweeper runs it, from a journal (a restart) or from nothing."""
    observed = list(journal or [])
    optimizer = LiteOptimizer(BODY, observed, seed)
    while len(observed) < budget:
        for suggestion in optimizer.ask(min(batch, budget - len(observed))):
            values = {"score": score(suggestion.assignments["x"], suggestion.assignments["y"])}
            optimizer.tell(suggestion, values)
            # as the journal keeps it, and a restart reads it back
            observed.append(
                json.loads(
                    json.dumps({"assignments": suggestion.assignments, "failed": False, "values": values})
                )
            )
    return observed


def points(observed: list[dict]) -> list[tuple[float, float]]:
    return [(o["assignments"]["x"], o["assignments"]["y"]) for o in observed]


def test_one_seed_repeats_its_suggestions_and_another_seed_shares_none_of_them():
    """Random start and model-based suggestions alike. Seeding numpy with seed + observation number made
    seed 1 replay seed 0 one place on (its first four random points were seed 0's second to fifth)."""
    state = numpy.random.get_state()
    seed0 = points(lite_sweep(0, 7))
    assert points(lite_sweep(0, 7)) == seed0
    for other in (1, 2, 12345):
        assert not set(points(lite_sweep(other, 7))) & set(seed0), f"seed {other} repeats seed 0's points"
    after = numpy.random.get_state()
    assert after[0] == state[0] and (after[1] == state[1]).all() and after[2:] == state[2:], (
        "the caller's numpy generator is left as it was"
    )


def test_a_restart_from_the_journal_suggests_what_the_uninterrupted_sweep_did():
    """Observation n's suggestion depends on (seed, n) and the n observations before it, not on how many
    times the sweeper process started; with two in flight it is the same in a batch as after a restart."""
    whole = lite_sweep(3, 7)
    assert points(lite_sweep(3, 7, journal=whole[:2])) == points(whole)  # restarted in the random start
    assert points(lite_sweep(3, 7, journal=whole[:5])) == points(whole)  # and where the model takes over
    batched = lite_sweep(3, 6, batch=2)
    assert points(lite_sweep(3, 6, journal=batched[:4], batch=2)) == points(batched)


@pytest.mark.slow
def test_the_sweep_seed_sets_the_sweep_in_one_go_or_restarted_and_another_seed_changes_it(tmp_path):
    """Through Hydra and the sweep folder: `hydra.sweeper.seed` (advisor.seed in bluewhale)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    sweep(tmp_path / "a" / "sweep", "hydra.sweeper.budget=7", "hydra.sweeper.seed=5")
    sweep(tmp_path / "b" / "sweep", "hydra.sweeper.budget=3", "hydra.sweeper.seed=5")  # stopped early...
    sweep(tmp_path / "b" / "sweep", "hydra.sweeper.budget=7", "hydra.sweeper.seed=5")  # ...and restarted
    sweep(tmp_path / "c" / "sweep", "hydra.sweeper.budget=7", "hydra.sweeper.seed=6")
    one, restarted, other = (points(journal(tmp_path / f / "sweep")) for f in "abc")
    assert len(one) == 7 and restarted == one
    assert not set(other) & set(one)
    assert points(lite_sweep(5, 7)) == one, "the sweeper's suggestions are the optimizer's, seed for seed"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["hydra.sweeper.parameters.x.path=xx"],
            "hydra.sweeper.parameters.x.path: unknown parameter path 'xx'",
        ),
        (
            ["hydra.sweeper.parameters.x.min=2.0"],
            "hydra.sweeper.parameters.x: empty range: min=2.0 must be below max=1.0",
        ),
        (
            ["+hydra.sweeper.metrics.score.threshold=0.5"],
            "a threshold on the only optimised metric is refused by SigOpt",
        ),
        (
            ["+hydra.sweeper.metrics.cost={objective:minimize}", "hydra.sweeper.budget=null"],
            "budget: missing; SigOpt requires observation_budget with two optimised metrics",
        ),
        (["x=0.1,0.2"], "a sweep over values is not for the sigopt sweeper"),
        (["x=0.1"], "x is set on the command line and tuned as parameter 'x'"),
        (["+hydra.sweeper.parameters.x.log=true"], "x.log: a log scale needs positive values, got min=-1.0"),
        (["+hydra.sweeper.parameters.size={path:size,values:[small]}"], "needs two or more distinct values"),
    ],
)
def test_bad_recipes_fail_before_any_trial_runs(tmp_path, overrides, message):
    folder = tmp_path / "sweep"
    result = sweep(folder, *overrides, check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert not calls(folder) and not (folder / "sigopt_observations.jsonl").exists()


def test_a_parameter_path_must_name_a_key_the_config_has():
    """A key counts whatever its value (an override replaces it); anything else is refused before a trial."""
    cfg = OmegaConf.create(
        {
            "train": {"lr": 0.1, "seed": None, "path": "???", "uri": "${oc.env:NOT_SET_HERE_XYZ}"},
            "mlp": [64, 32],
        }
    )
    OmegaConf.set_struct(cfg, True)  # as Hydra composes it
    for path in ("train.lr", "train.seed", "train.path", "train.uri", "train", "mlp", "mlp.1"):
        assert config_has(cfg, path), path
    for path in ("train.workers", "train.lr.x", "trains.lr", "mlp.2", "mlp.x", "", "train."):
        assert not config_has(cfg, path), path


def test_dry_run_prints_the_experiment_and_runs_nothing(tmp_path):
    folder = tmp_path / "sweep"
    result = sweep(
        folder, "hydra.sweeper.dry_run=true", "+hydra.sweeper.parameters.size={path:size,values:[small,big]}"
    )
    printed = yaml.safe_load(result.stdout)
    assert printed["parameters"]["size"] == {
        "path": "size",
        "type": "categorical",
        "values": ["small", "big"],
    }
    assert printed["metrics"] == {
        "score": {"objective": "maximize", "strategy": "optimize", "threshold": None}
    }
    assert printed["budget"] == 6
    assert not folder.exists()
