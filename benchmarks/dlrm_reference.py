"""The project's DLRM training step against the facebookresearch/dlrm reference script, in one run.

Both train the same architecture (Criteo Kaggle's 26 table sizes, dim 16, bottom 13-512-256-64-16, top
512-256-1, dot interactions, batch 2048) on the same planted Kaggle-shaped rows, cut as the reference cuts
Kaggle (days 0-5 train, first half of day 6 test), one epoch each, and are scored on the same held-out
rows: samples/s of the training step (forward, backward, optimiser; data loading excluded, as the
reference's own `--print-time` excludes it) and test AUC after the same samples seen.

The reference is never vendored: check it out outside the repository and give its path.

    git clone https://github.com/facebookresearch/dlrm /work/ref/dlrm     # or from a mirror
    python -m venv /work/ref/venv                                         # its own venv, outside the repo
    .venv/bin/python -c "import site; print(site.getsitepackages()[0])" \
        > /work/ref/venv/lib/python3.11/site-packages/bluewhale_torch.pth # reuse this venv's torch/numpy/sklearn
    /work/ref/venv/bin/pip install tensorboard mlperf-logging             # what dlrm_s_pytorch.py imports
    .venv/bin/python benchmarks/dlrm_reference.py --ref /work/ref/dlrm --ref-python /work/ref/venv/bin/python

The reference runs twice: `--num-batches` steps for its step time (no `--mlperf-logging`, so its timer
covers the step alone), then a whole epoch with `--mlperf-logging` for its test AUC. Ours runs the
recipe's settings (`fused`: row-wise Adagrad fused into the backward, fp32 MLPs; where the CPU has bf16
natively also `fused_bf16`, bf16 MLPs: the recipe's `precision=auto` takes whichever `bf16_speedup`
measures faster, recorded as `auto_picks`) and the first trainer (`today`: Adam + SparseAdam) for the
record. Writes JSON.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from time_to_auc import VARIANTS, planted_kaggle, run_variant, split  # noqa: E402

from bluewhale.atomic import write_json_atomically  # noqa: E402
from bluewhale.dataset.synthetic_criteo import KAGGLE_CARDINALITIES  # noqa: E402
from bluewhale.train import cpu  # noqa: E402

BATCH = 2048
STEP_TIME = re.compile(r"Finished training it (\d+)/\d+ of epoch \d+, ([0-9.]+) ms/it")
AUC = re.compile(r" auc ([0-9.]+), best auc")


def write_reference_data(data: dict, folder: Path) -> tuple[Path, Path]:
    """The rows in the reference's processed Kaggle format: `<folder>/train.txt` is named (never read;
    the processed npz and `train_day_count.npz` beside it are), 7 'days' as the reference cuts them."""
    n = len(data["label"])
    day = n // 7
    counts = [*(np.diff(np.linspace(0, n - day, 7).astype(int))), day]
    np.savez(folder / "train_day_count.npz", total_per_file=np.array(counts))
    processed = folder / "kaggle_processed.npz"
    np.savez(
        processed,
        X_int=np.maximum(data["raw_dense"].numpy(), 0),  # the reference takes log(x + 1) itself
        X_cat=data["sparse"].numpy().astype(np.int32),
        y=data["label"].numpy().astype(np.int32),
        counts=np.array(KAGGLE_CARDINALITIES, dtype=np.int64),
    )
    return folder / "train.txt", processed


def reference(args: argparse.Namespace, raw: Path, processed: Path, batches: int | None) -> dict:
    """Run dlrm_s_pytorch.py: `batches` steps for step time, or (None) one epoch with a test AUC."""
    command = [
        str(args.ref_python),
        str(args.ref / "dlrm_s_pytorch.py"),
        "--arch-sparse-feature-size=16",
        "--arch-mlp-bot=13-512-256-64-16",
        "--arch-mlp-top=512-256-1",
        "--arch-interaction-op=dot",
        "--data-generation=dataset",
        "--data-set=kaggle",
        f"--raw-data-file={raw}",
        f"--processed-data-file={processed}",
        "--loss-function=bce",
        "--round-targets=True",
        f"--learning-rate={args.ref_lr}",
        f"--mini-batch-size={BATCH}",
        "--test-mini-batch-size=16384",
        "--test-num-workers=0",
        "--num-workers=0",
        "--nepochs=1",
        "--print-time",
    ]
    if batches:
        command += [f"--num-batches={batches}", "--print-freq=5"]
    else:
        command += ["--print-freq=1000000", "--mlperf-logging", "--test-freq=1000000"]
    started = time.perf_counter()
    env = {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
    done = subprocess.run(command, cwd=args.ref, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(
            f"the reference failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    out = {"wall_s": time.perf_counter() - started}
    if batches:
        times = [(int(i), float(ms)) for i, ms in STEP_TIME.findall(done.stdout)]
        steady = [ms for i, ms in times if i > 5] or [ms for _, ms in times]  # the first 5 warm up
        out["ms_per_step"] = float(np.mean(steady))
        out["samples_per_s"] = BATCH / (out["ms_per_step"] / 1000)
    else:
        aucs = AUC.findall(done.stdout)
        if not aucs:
            raise RuntimeError(f"no test AUC in the reference's output:\n{done.stdout[-3000:]}")
        out["test_auc"] = float(aucs[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ref", type=Path, required=True, help="a checkout of facebookresearch/dlrm")
    parser.add_argument("--ref-python", type=Path, default=Path(sys.executable))
    parser.add_argument("--ref-lr", type=float, default=0.1, help="its SGD rate (its Kaggle script's)")
    parser.add_argument("--rows", type=int, default=150_000)
    parser.add_argument("--batches", type=int, default=30, help="reference steps timed for its step time")
    parser.add_argument(
        "--ours", nargs="+", default=["fused", *(["fused_bf16"] if cpu.native_bf16() else []), "today"]
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both (default: torch's)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "synthetic_criteo")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dlrm_reference.json")
    args = parser.parse_args()
    if not (args.ref / "dlrm_s_pytorch.py").exists():
        parser.error(f"--ref {args.ref}: no dlrm_s_pytorch.py there (a facebookresearch/dlrm checkout)")

    data = planted_kaggle(args.rows, 0, args.data_dir)
    train, test = split(data)
    ours_args = argparse.Namespace(epochs=1, eval_every=10**12, threads=args.threads)
    results = {}
    with tempfile.TemporaryDirectory(prefix="dlrm_reference_") as tmp:
        raw, processed = write_reference_data(data, Path(tmp))
        for name in args.ours:
            run = run_variant(name, train, test, ours_args, "cpu")
            results[name] = {
                "samples_per_s": run["samples_per_s"],
                "test_auc": run["curve"][-1]["auc"],
                "bf16": run["bf16"],
                "threads": run["threads"],
                "settings": VARIANTS[name],
            }
        step = reference(args, raw, processed, args.batches)
        epoch = reference(args, raw, processed, None)
        results["reference"] = {
            "samples_per_s": step["samples_per_s"],
            "ms_per_step": step["ms_per_step"],
            "test_auc": epoch["test_auc"],
            "optimizer": f"SGD lr {args.ref_lr}",
        }
    ref = results["reference"]
    print(
        f"\n{len(train['label'])} train rows (one epoch), {len(test['label'])} held-out rows, batch {BATCH}"
    )
    print(f"{'trainer':12s} {'samples/s':>10s} {'x reference':>12s} {'test AUC':>9s}")
    for name, r in results.items():
        r["vs_reference"] = r["samples_per_s"] / ref["samples_per_s"]
        print(f"{name:12s} {r['samples_per_s']:10.0f} {r['vs_reference']:12.2f} {r['test_auc']:9.4f}")
    result = {
        "rows": args.rows,
        "train_rows": len(train["label"]),
        "test_rows": len(test["label"]),
        "batch": BATCH,
        "cores": cpu.usable_cores(),
        "native_bf16": cpu.native_bf16(),
        "bf16_speedup": cpu.bf16_speedup(args.threads),  # the probe precision=auto decides by
        "auto_picks": "bf16" if cpu.choose("auto", args.threads).bf16 else "fp32",
        "results": results,
    }
    write_json_atomically(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
