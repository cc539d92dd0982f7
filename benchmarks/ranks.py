"""Training throughput with 2 ranks against 1 rank on this machine (torch.distributed on gloo, a local
launch: `cluster.ranks_per_node=2`), on the same data, the same global batch and the same model.

Runs alternate (1, 2, 1, 2, ...) so a change in the machine's load hits both alike; the table gives each
run's job throughput (samples of every rank per second of training), the median per world size, and
their ratio. Writes benchmarks/results/ranks.json.

    .venv/bin/python -P benchmarks/ranks.py --rows 100000 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from bluewhale.app import compose_experiment
from bluewhale.atomic import write_json_atomically
from bluewhale.pipeline import run

RESULTS = Path(__file__).parent / "results" / "ranks.json"
# name, ranks, PyTorch threads a rank (None: the cores shared evenly among the ranks)
VARIANTS = [("1 rank", 1, None), ("2 ranks", 2, None), ("1 rank, 1 thread", 1, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="planted Criteo rows (dataset.rows)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per world size")
    parser.add_argument("--batch-size", type=int, default=1024, help="global batch (train.batch_size)")
    parser.add_argument("--warmup", type=int, default=1, help="rounds run first and not counted")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bluewhale-bench-distributed-"))
    common = [
        f"dataset.rows={args.rows}",
        f"train.batch_size={args.batch_size}",
        "train.epochs=1",
        "train.progress=false",
        "tracking.log_model=false",
        "tracking.system_metrics=false",
        "train.checkpoint_every=0",
        f"paths.data_dir={folder}/data",
        f"tracking.uri=sqlite:///{folder}/mlflow.db",
    ]
    run(compose_experiment([*common, "pipeline.stages=[process]"]))  # process once, outside the timings
    runs = []
    for repeat in range(-args.warmup, args.repeats):  # negative: a warm-up round (first runs are slower)
        for name, ranks, threads in VARIANTS:
            start = time.perf_counter()
            threads_key = [f"cluster.threads={threads}"] if threads else []
            metrics = run(compose_experiment([*common, f"cluster.ranks_per_node={ranks}", *threads_key]))
            runs.append(
                {
                    "variant": name,
                    "ranks": ranks,
                    "repeat": repeat,
                    "train_samples_per_s": metrics["train_samples_per_s"],
                    "train_time_s": metrics["train_time_s"],
                    "wall_s": time.perf_counter() - start,
                    "test_auc": metrics["test_auc"],
                }
            )
            print(json.dumps(runs[-1]), flush=True)
    runs = [x for x in runs if x["repeat"] >= 0]
    names = [v[0] for v in VARIANTS]
    median = {
        n: statistics.median(x["train_samples_per_s"] for x in runs if x["variant"] == n) for n in names
    }
    result = {
        "what": "DLRM on planted Criteo, one epoch, same global batch; job throughput (all ranks' samples/s)",
        "rows": args.rows,
        "warmup_rounds_not_counted": args.warmup,
        "batch_size": args.batch_size,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_at_end": os.getloadavg(),
        "runs": runs,
        "median_samples_per_s": median,
        "ratio_2_ranks_over_1_rank": median["2 ranks"] / median["1 rank"],
        "ratio_2_ranks_over_1_rank_1_thread": median["2 ranks"] / median["1 rank, 1 thread"],
    }
    write_json_atomically(args.out, result)
    print("| variant | runs (samples/s) | median |\n|---|---|---|")
    for n in names:
        values = ", ".join(f"{x['train_samples_per_s']:.0f}" for x in runs if x["variant"] == n)
        print(f"| {n} | {values} | {median[n]:.0f} |")
    print(
        f"2 ranks / 1 rank: {result['ratio_2_ranks_over_1_rank']:.2f}x (load average {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
