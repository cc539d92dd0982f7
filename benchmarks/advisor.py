"""SigOpt (lite driver, model-based) against random search with the same budget, over several seeds in one run.

The objective is the Hartmann 3-D function (maximised as -f; optimum 3.86278 at (0.1146, 0.5556, 0.8525)),
cheap and with a known optimum. Both arms go through the sweeper's own `LiteOptimizer` (ask / tell, as a
sweep does); random search is SigOpt's `type: random` experiment, so only the search strategy differs.
Reports, per arm: median observations to reach the threshold (a seed that never reaches it counts as
budget + 1, shown as '>budget'), how many seeds reached it, the median best value, seconds per suggestion.

    .venv/bin/python benchmarks/advisor.py --seeds 5 --budget 30 --threshold 3.7
    .venv/bin/python benchmarks/advisor.py --seeds 2 --dlrm   # and a small DLRM sweep through the pipeline
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

from hydra_plugins.hydra_sigopt_sweeper._experiment import normalise, sigopt_body
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


def hartmann_value(assignments: dict) -> float:
    return float(hartmann3([assignments["x1"], assignments["x2"], assignments["x3"]]))


def run_arm(
    kind: str, seed: int, budget: int, experiment: dict = EXPERIMENT, objective=hartmann_value
) -> dict:
    body = sigopt_body(dict(experiment, budget=budget), 1)
    body["type"] = kind
    optimizer = LiteOptimizer(body, [], seed)
    values, ask_s = [], 0.0
    for _ in range(budget):
        start = time.perf_counter()
        (suggestion,) = optimizer.ask(1)
        ask_s += time.perf_counter() - start
        value = objective(suggestion.assignments)
        optimizer.tell(suggestion, None if value is None else {next(iter(experiment["metrics"])): value})
        values.append(value if value is not None else -math.inf)
    return {"values": values, "ask_s": ask_s / budget}


def dlrm(workdir: Path, rows: int, params: list[str]) -> tuple[dict, object]:
    """The advisor's own DLRM recipe with test_auc as the one metric, and a trial function that runs the real
    pipeline in this process (planted data with `rows` rows, MLflow in `workdir`)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from bluewhale.advisor.recipe import generate
    from bluewhale.app import CONF_DIR
    from bluewhale.pipeline import run
    from hydra_plugins.hydra_sigopt_sweeper._experiment import overrides

    base = [
        f"dataset.rows={rows}",
        "tracking.log_model=false",
        "train.progress=false",
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

    def objective(assignments: dict) -> float | None:
        return run(job_config(*overrides(experiment, assignments))).get("test_auc")

    return experiment, objective


def dlrm_table(args: argparse.Namespace) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        experiment, objective = dlrm(Path(tmp), args.dlrm_rows, args.dlrm_params.split(","))
        results = {
            arm: [
                run_arm(kind, seed, args.dlrm_budget, experiment, objective)
                for seed in range(args.dlrm_seeds)
            ]
            for arm, kind in {"sigopt": "offline", "random": "random"}.items()
        }
    table = {}
    for arm, runs in results.items():
        reach = [to_threshold(r["values"], args.dlrm_threshold, args.dlrm_budget) for r in runs]
        table[arm] = {
            "observations_to_threshold": reach,
            "median_observations_to_threshold": statistics.median(reach),
            "seeds_reaching_threshold": sum(n <= args.dlrm_budget for n in reach),
            "best_values": [max(r["values"]) for r in runs],
            "median_best_value": statistics.median(max(r["values"]) for r in runs),
        }
    print(
        f"\nDLRM on {args.dlrm_rows} planted rows: test_auc threshold {args.dlrm_threshold}, budget {args.dlrm_budget}"
    )
    print(f"{'arm':8} {'median obs to threshold':>24} {'seeds reaching':>15} {'median best AUC':>16}")
    for arm, row in table.items():
        n = row["median_observations_to_threshold"]
        print(
            f"{arm:8} {(f'>{args.dlrm_budget}' if n > args.dlrm_budget else f'{n:g}'):>24} "
            f"{row['seeds_reaching_threshold']:>11}/{args.dlrm_seeds:<3} {row['median_best_value']:>16.4f}"
        )
    return {
        "rows": args.dlrm_rows,
        "threshold": args.dlrm_threshold,
        "budget": args.dlrm_budget,
        "arms": table,
    }


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
    parser.add_argument("--dlrm-rows", type=int, default=20000)
    parser.add_argument("--dlrm-seeds", type=int, default=2)
    parser.add_argument("--dlrm-budget", type=int, default=14)
    parser.add_argument(
        "--dlrm-params", default="lr,embedding_dim,top_mlp", help="which of the advisor's to tune"
    )
    parser.add_argument("--dlrm-threshold", type=float, default=0.74)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "advisor.json"))
    args = parser.parse_args()

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
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "objective": "hartmann3",
        "optimum": OPTIMUM,
        "threshold": args.threshold,
        "budget": args.budget,
        "seeds": args.seeds,
        "cpus": os.cpu_count(),
        "random_odds_per_observation": p,
        "random_median_exact": random_median_exact,
        "sigopt_over_random_median_ratio": ratio,
        "arms": table,
    }
    if args.dlrm:
        report["dlrm"] = dlrm_table(args)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(out)


if __name__ == "__main__":
    main()
