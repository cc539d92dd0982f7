"""SigOpt (lite driver, model-based) against random search with the same budget, over several seeds in one run.

The objective is the Hartmann 3-D function (maximised as -f; optimum 3.86278 at (0.1146, 0.5556, 0.8525)),
cheap and with a known optimum. Both arms go through the sweeper's own `LiteOptimizer` (ask / tell, as a
sweep does); random search is SigOpt's `type: random` experiment, so only the search strategy differs.
Reports, per arm and per seed: observations to reach the threshold (a seed that never reaches it counts as
budget + 1, shown as '>budget') and their median, the best value and its median, seconds per suggestion.
A seed seeds both arms (SigOpt's random start is then the same points random search draws) and each
trial's training seed, so the DLRM arms face the noise between repeats of one configuration.

    .venv/bin/python benchmarks/advisor.py --seeds 5 --budget 30 --threshold 3.7   # -> results/advisor.json
    .venv/bin/python benchmarks/advisor.py --noise      # DLRM AUC noise against spread per size (minutes)
    .venv/bin/python benchmarks/advisor.py --dlrm-only  # DLRM arms, 5 seeds, 50k rows -> advisor_dlrm.json
    # split over two processes: --dlrm-first-seed 0 --dlrm-seeds 3 --out A/advisor.json, then
    # --dlrm-first-seed 3 --dlrm-seeds 2 --out B/advisor.json, then --dlrm-merge A/advisor_dlrm.json B/...
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import numpy as np

from bluewhale.atomic import write_json_atomically
from hydra_plugins.hydra_sigopt_sweeper._experiment import normalise, overrides, sigopt_body
from hydra_plugins.hydra_sigopt_sweeper._optimizer import LiteOptimizer

OPTIMUM = 3.86278
A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
P = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]])
ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann3(x: np.ndarray) -> np.ndarray:
    """-f of Hartmann 3-D, so higher is better; x has shape (..., 3) in [0, 1]^3."""
    x = np.asarray(x)[..., None, :]
    return (ALPHA * np.exp(-(A * (x - P) ** 2).sum(-1))).sum(-1)


EXPERIMENT = normalise(
    {
        "name": "hartmann3",
        "parameters": {
            name: {"path": name, "type": "double", "min": 0.0, "max": 1.0} for name in ("x1", "x2", "x3")
        },
        "metrics": {"value": {"objective": "maximize"}},
    }
)


def hartmann_value(assignments: dict, trial_seed: int = 0) -> float:
    """Noise-free: the trial's training seed is ignored."""
    return float(hartmann3([assignments["x1"], assignments["x2"], assignments["x3"]]))


def train_seed(seed: int, observation: int) -> int:
    """The training seed of a seed's n-th trial: the same in both arms (so their shared random start is
    one set of trials, and run once), different between seeds and between trials."""
    return 1000 * seed + observation


def run_arm(
    kind: str, seed: int, budget: int, experiment: dict = EXPERIMENT, objective=hartmann_value
) -> dict:
    """One arm, one seed: `seed` seeds the arm's suggestions (`LiteOptimizer`, both `offline` and `random`)
    and the trials' training seeds."""
    body = sigopt_body(dict(experiment, budget=budget), 1)
    body["type"] = kind
    optimizer = LiteOptimizer(body, [], seed)
    values, points, ask_s = [], [], 0.0
    for n in range(budget):
        start = time.perf_counter()
        (suggestion,) = optimizer.ask(1)
        ask_s += time.perf_counter() - start
        value = objective(suggestion.assignments, train_seed(seed, n))
        optimizer.tell(suggestion, None if value is None else {next(iter(experiment["metrics"])): value})
        values.append(value if value is not None else -math.inf)
        points.append(suggestion.assignments)
    return {"values": values, "assignments": points, "ask_s": ask_s / budget}


def dlrm(workdir: Path, rows: int, params: list[str]) -> tuple[dict, object, object]:
    """The advisor's own DLRM recipe with test_auc as the one metric; `trial(*overrides)` runs the real
    pipeline in this process (planted data with `rows` rows, MLflow in `workdir`) and returns test_auc, and
    `objective(assignments, trial_seed)` is one trial of a suggestion, trained with `train.seed=trial_seed`
    (memoised: the arms' shared random start runs once)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from bluewhale.advisor.recipe import generate
    from bluewhale.app import CONF_DIR
    from bluewhale.pipeline import run

    base = [
        f"dataset.rows={rows}",
        "tracking.log_model=false",
        "train.progress=false",
        "cluster.threads=1",  # one thread a trial: two threads on two loaded cores thrash (measured 3-5x)
        f"paths.data_dir={workdir}/data",
        f"tracking.uri=sqlite:///{workdir}/mlflow.db",
    ]

    def config(*extra: str):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("config", overrides=[*base, *extra], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        return cfg

    def job_config(*extra: str):
        cfg = config(*extra)
        with open_dict(cfg):  # as a job sees it: `hydra` lives in HydraConfig, not in the job's config
            del cfg["hydra"]
        return cfg

    experiment = normalise(generate(config("advisor=sigopt"), normalise({})))
    # a few of them: SigOpt samples at random until it has max(2 x dimensions, 4) observations
    experiment["parameters"] = {n: s for n, s in experiment["parameters"].items() if n in params}
    experiment["metrics"] = normalise({"metrics": {"test_auc": {"objective": "maximize"}}})["metrics"]
    memo: dict[tuple, float | None] = {}

    def trial(*extra: str) -> float | None:
        if extra in memo:
            return memo[extra]
        start = time.perf_counter()
        value = memo[extra] = run(job_config(*extra)).get("test_auc")
        print(
            f"  {time.strftime('%H:%M:%S')} {time.perf_counter() - start:5.1f}s auc={value} {' '.join(extra)}"
        )
        return value

    def objective(assignments: dict, trial_seed: int) -> float | None:
        return trial(*overrides(experiment, assignments), f"train.seed={trial_seed}")

    return experiment, objective, trial


def noise_table(args: argparse.Namespace) -> dict:
    """Per data size: test AUC of one configuration (the config's defaults) over several training seeds,
    against the spread of AUC over configurations drawn at random from the recipe's ranges (training seed 0).
    The comparison needs the first (noise) well below the second (what tuning can win)."""
    import tempfile

    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rows in map(int, args.noise_rows.split(",")):
            print(f"rows {rows}", flush=True)
            experiment, _, trial = dlrm(Path(tmp), rows, args.dlrm_params.split(","))
            start = time.perf_counter()
            repeats = [trial(f"train.seed={s}") for s in range(args.noise_repeats)]
            seconds = (time.perf_counter() - start) / args.noise_repeats
            body = sigopt_body(dict(experiment, budget=args.noise_configs), 1)
            body["type"] = "random"
            optimizer = LiteOptimizer(body, [], 0)
            configs = []
            for _ in range(args.noise_configs):
                (suggestion,) = optimizer.ask(1)
                configs.append(trial(*overrides(experiment, suggestion.assignments), "train.seed=0"))
                optimizer.tell(suggestion, {"test_auc": configs[-1] or 0.0})
            table[rows] = {
                "repeat_aucs": repeats,
                "repeat_std": statistics.stdev(repeats),
                "config_aucs": configs,
                "config_std": statistics.stdev(configs),
                "config_range": max(configs) - min(configs),
                "noise_over_spread": statistics.stdev(repeats) / statistics.stdev(configs),
                "seconds_per_trial": seconds,
            }
            print(
                f"rows {rows}: repeat std {table[rows]['repeat_std']:.4f}, config std "
                f"{table[rows]['config_std']:.4f} (range {table[rows]['config_range']:.4f}), "
                f"{seconds:.0f} s a trial",
                flush=True,
            )
    return table


def dlrm_table(args: argparse.Namespace, out: Path) -> dict:
    """Both arms on the real DLRM pipeline, seed by seed (each seed's row is written as soon as it is done:
    an interrupted run keeps the seeds it finished). Every trial trains with its own seed (`train_seed`), so
    the AUC noise between repeats of one configuration is part of what both arms face."""
    import tempfile

    thresholds = [float(t) for t in args.dlrm_thresholds.split(",")]
    report = {
        "rows": args.dlrm_rows,
        "params": args.dlrm_params.split(","),
        "budget": args.dlrm_budget,
        "thresholds": thresholds,
        "seeds": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        experiment, objective, _ = dlrm(Path(tmp), args.dlrm_rows, report["params"])
        report["recipe_parameters"] = experiment["parameters"]
        for seed in range(args.dlrm_first_seed, args.dlrm_first_seed + args.dlrm_seeds):
            print(f"seed {seed}", flush=True)
            row = {}
            for arm, kind in ARMS.items():
                result = run_arm(kind, seed, args.dlrm_budget, experiment, objective)
                row[arm] = {"values": result["values"], "assignments": result["assignments"]}
            report["seeds"][seed] = row
            report["machine"] = machine()
            report["arms"] = dlrm_summary(report)
            write_json(out, report)
            print_dlrm(report)
    return report


ARMS = {"sigopt": "offline", "random": "random"}


def dlrm_summary(report: dict) -> dict:
    """Per arm and threshold: observations to reach it per seed (budget + 1: not reached) and their median;
    the best AUC per seed and its median."""
    budget, seeds = report["budget"], report["seeds"]
    table = {}
    for arm in ARMS:
        runs = [seeds[s][arm]["values"] for s in seeds]
        table[arm] = {
            "best_values": [max(v) for v in runs],
            "median_best_value": statistics.median(max(v) for v in runs),
            "observations_to_threshold": {
                str(t): [to_threshold(v, t, budget) for v in runs] for t in report["thresholds"]
            },
            "median_observations_to_threshold": {
                str(t): statistics.median(to_threshold(v, t, budget) for v in runs)
                for t in report["thresholds"]
            },
        }
    return table


def print_dlrm(report: dict) -> None:
    budget, arms = report["budget"], report["arms"]
    print(f"\nDLRM on {report['rows']} planted rows, budget {budget}, seeds {list(report['seeds'])}")
    print(f"{'arm':8} {'best AUC per seed':>40} {'median':>7}")
    for arm, row in arms.items():
        print(
            f"{arm:8} {' '.join(f'{v:.4f}' for v in row['best_values']):>40} {row['median_best_value']:7.4f}"
        )
    for t in report["thresholds"]:
        cells = []
        for arm, row in arms.items():
            reach = ",".join(
                f">{budget}" if n > budget else str(n) for n in row["observations_to_threshold"][str(t)]
            )
            n = row["median_observations_to_threshold"][str(t)]
            cells.append(f"{arm} [{reach}] median {f'>{budget}' if n > budget else n}")
        print(f"AUC >= {t}: " + "; ".join(cells))


def to_threshold(values: list[float], threshold: float, budget: int) -> int:
    return next((i + 1 for i, v in enumerate(values) if v >= threshold), budget + 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--threshold", type=float, default=3.7)
    parser.add_argument(
        "--dlrm", action="store_true", help="also compare on a small real DLRM sweep (minutes)"
    )
    parser.add_argument("--dlrm-rows", type=int, default=50000, help="noise << spread from here up")
    parser.add_argument("--dlrm-seeds", type=int, default=5)
    parser.add_argument("--dlrm-first-seed", type=int, default=0, help="to split the seeds over processes")
    parser.add_argument(
        "--dlrm-merge", nargs="+", help="DLRM tables of the same setting (other seeds) to merge"
    )
    parser.add_argument("--dlrm-budget", type=int, default=14)
    parser.add_argument(
        "--dlrm-params", default="lr,embedding_dim,top_mlp", help="which of the advisor's to tune"
    )
    parser.add_argument("--dlrm-thresholds", default="0.76,0.77,0.78", help="comma-separated test AUCs")
    parser.add_argument("--dlrm-only", action="store_true", help="skip Hartmann; DLRM to advisor_dlrm.json")
    parser.add_argument(
        "--noise", action="store_true", help="only measure DLRM's AUC noise against its spread (minutes)"
    )
    parser.add_argument("--noise-rows", default="20000,50000,100000")
    parser.add_argument("--noise-repeats", type=int, default=3)
    parser.add_argument("--noise-configs", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "advisor.json"))
    args = parser.parse_args()
    out = Path(args.out)
    dlrm_out = out.with_name(f"{out.stem}_dlrm.json")
    if args.noise:
        noise = {"machine": machine(), "params": args.dlrm_params, "rows": noise_table(args)}
        write_json(out.with_name(f"{out.stem}_noise.json"), noise)
        return
    if args.dlrm_merge:
        merged = json.loads(Path(args.dlrm_merge[0]).read_text())
        for other in args.dlrm_merge[1:]:
            merged["seeds"] |= json.loads(Path(other).read_text())["seeds"]
        merged["seeds"] = dict(sorted(merged["seeds"].items(), key=lambda kv: int(kv[0])))
        merged["arms"] = dlrm_summary(merged)
        write_json(dlrm_out, merged)
        print_dlrm(merged)
        if out.exists():
            write_json(out, json.loads(out.read_text()) | {"dlrm": merged})
        return
    if args.dlrm_only:
        dlrm_table(args, dlrm_out)
        if out.exists():  # the summary file carries the latest DLRM table too
            write_json(out, json.loads(out.read_text()) | {"dlrm": json.loads(dlrm_out.read_text())})
        return

    # random search's exact odds per observation, from a large uniform sample: its true median needs no budget
    p = float((hartmann3(np.random.default_rng(0).random((2_000_000, 3))) >= args.threshold).mean())
    random_median_exact = math.ceil(math.log(0.5) / math.log1p(-p)) if p > 0 else math.inf

    arms = {"sigopt": "offline", "random": "random"}
    results = {
        arm: [run_arm(kind, seed, args.budget) for seed in range(args.seeds)] for arm, kind in arms.items()
    }
    table = {}
    for arm, runs in results.items():
        reach = [to_threshold(r["values"], args.threshold, args.budget) for r in runs]
        table[arm] = {
            "observations_to_threshold": reach,
            "median_observations_to_threshold": statistics.median(reach),
            "seeds_reaching_threshold": sum(n <= args.budget for n in reach),
            "best_values": [max(r["values"]) for r in runs],
            "median_best_value": statistics.median(max(r["values"]) for r in runs),
            "seconds_per_suggestion": statistics.median(r["ask_s"] for r in runs),
        }

    def shown(n: float) -> str:
        return f">{args.budget}" if n > args.budget else f"{n:g}"

    print(
        f"Hartmann-3 (optimum {OPTIMUM}), threshold {args.threshold}, budget {args.budget}, {args.seeds} seeds"
    )
    print(
        f"{'arm':8} {'median obs to threshold':>24} {'seeds reaching':>15} {'median best':>12} {'s/suggestion':>13}"
    )
    for arm, row in table.items():
        print(
            f"{arm:8} {shown(row['median_observations_to_threshold']):>24} "
            f"{row['seeds_reaching_threshold']:>11}/{args.seeds:<3} {row['median_best_value']:>12.4f} "
            f"{row['seconds_per_suggestion']:>13.3f}"
        )
    # a censored median (no seed of random search got there within the budget) understates random's
    # true median; the exact one from its odds does not
    measured = table["random"]["median_observations_to_threshold"]
    random_reference = random_median_exact if measured > args.budget else measured
    ratio = table["sigopt"]["median_observations_to_threshold"] / random_reference
    print(f"random search's exact median (odds {p:.2e} per observation): {random_median_exact}")
    print(
        f"sigopt / random median observations to threshold: {ratio:.3f} (target <= 0.5; random's {random_reference})"
    )
    report = {
        "objective": "hartmann3",
        "optimum": OPTIMUM,
        "threshold": args.threshold,
        "budget": args.budget,
        "seeds": args.seeds,
        "machine": machine(),
        "random_odds_per_observation": p,
        "random_median_exact": random_median_exact,
        "sigopt_over_random_median_ratio": ratio,
        "arms": table,
    }
    if args.dlrm:
        dlrm_table(args, dlrm_out)
    if dlrm_out.exists():
        report["dlrm"] = json.loads(dlrm_out.read_text())
    write_json(out, report)


def machine() -> dict:
    """Where and under what load the figures were taken (other work shares these cores)."""
    return {
        "cpus": os.cpu_count(),
        "load_average_1_5_15": os.getloadavg(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_json(path: Path, data: dict) -> None:
    write_json_atomically(path, data)


if __name__ == "__main__":
    main()
