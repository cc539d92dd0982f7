"""Time to a target AUC: the DLRM recipe's model on planted Criteo-Kaggle-shaped data, on the CPU and,
where CUDA is present, on the GPU, with each CPU optimisation as its own variant (side by side, one run).

    .venv/bin/python benchmarks/time_to_auc.py                      # sizes that run here in minutes
    .venv/bin/python benchmarks/time_to_auc.py --rows 4000000 --variants today fused fused_bf16

Data: the planted twin with Criteo Kaggle's 26 table sizes (33.8M embedding rows; `dataset.cardinalities=
kaggle`), scaled rows; the model has those table sizes (dim 16, bottom 13-512-256-64-16, top 512-256-1).
Rows are cut as the reference cuts Kaggle's 7 days: the first 6/7 train, the first half of the rest is
the fixed held-out set. Each variant trains in the same order and is scored on the held-out set every
`--eval-every` samples; time counts optimisation only. The target is the best AUC `today` reached, less
0.005 (or `--target`); time to target is the training time at the first evaluation at or above it. Prints a
table (time to target, samples/s, ratio to `today`, CPU/GPU ratio where a GPU ran); writes JSON.

Variants (CPU): today (Adam + SparseAdam, fp32: the trainer before issue 12), rowwise (row-wise Adagrad on
sparse gradients), fused (row-wise Adagrad applied in the lookup's backward), fused_bf16 (and bf16 MLPs,
only where the CPU has AMX/AVX-512-bf16), fused_b8k (batch 8192, learning rates scaled by its square
root, with warm-up). GPU: gpu_best (batch 32768, fused row-wise Adagrad, fused Adam, bf16 autocast).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import torch
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bluewhale.atomic import write_json_atomically  # noqa: E402
from bluewhale.dataset.criteo import DENSE, SPARSE  # noqa: E402
from bluewhale.dataset.synthetic_criteo import KAGGLE_CARDINALITIES, SyntheticCriteo  # noqa: E402
from bluewhale.model.dlrm import DLRM  # noqa: E402
from bluewhale.model.inputs import Input  # noqa: E402
from bluewhale.train import cpu  # noqa: E402
from bluewhale.train.optim import optimizers  # noqa: E402
from bluewhale.train.trainer import bce, lr_factor  # noqa: E402

ARCH = {"embedding_dim": 16, "bottom_mlp": [512, 256, 64], "top_mlp": [512, 256]}
LR, EMBEDDING_LR_SCALE = 0.003, 5.0  # dense Adam; row-wise Adagrad's rows at LR x scale
VARIANTS = {  # name -> settings (precision auto: bf16 only where the CPU has it natively)
    "today": {"embedding_optimizer": "sparse_adam", "fused": False, "precision": "fp32", "batch": 2048},
    "rowwise": {"embedding_optimizer": "rowwise_adagrad", "fused": False, "precision": "fp32", "batch": 2048},
    "fused": {"embedding_optimizer": "rowwise_adagrad", "fused": True, "precision": "fp32", "batch": 2048},
    "fused_bf16": {
        "embedding_optimizer": "rowwise_adagrad",
        "fused": True,
        "precision": "bf16",
        "batch": 2048,
    },
    "fused_b8k": {
        "embedding_optimizer": "rowwise_adagrad",
        "fused": True,
        "precision": "auto",
        "batch": 8192,
    },
    "gpu_best": {
        "embedding_optimizer": "rowwise_adagrad",
        "fused": True,
        "precision": "bf16",
        "batch": 32768,
    },
}


def planted_kaggle(rows: int, seed: int, data_dir: Path) -> dict[str, torch.Tensor]:
    """The planted Kaggle-shaped twin as the DLRM recipe feeds it: log1p dense (empty -> 0), one id per
    table (values numbered in order of appearance, an empty field is a value of its own), label."""
    data = SyntheticCriteo(rows=rows, seed=seed, dir=str(data_dir), cardinalities="kaggle")
    table, _ = data.read()
    dense = np.stack([pc.fill_null(table.column(c), 0).to_numpy() for c in DENSE], 1)
    ids = np.empty((table.num_rows, len(SPARSE)), np.int64)
    for j, c in enumerate(SPARSE):
        codes = pc.dictionary_encode(pc.fill_null(table.column(c), "")).combine_chunks().indices
        ids[:, j] = codes.to_numpy() % KAGGLE_CARDINALITIES[j]
    return {
        "raw_dense": torch.from_numpy(dense.astype(np.int64)),
        "dense": torch.from_numpy(np.log1p(np.maximum(dense, 0)).astype(np.float32)),
        "sparse": torch.from_numpy(ids),
        "label": torch.from_numpy(table.column("label").to_numpy().astype(np.float32)),
        "planted": torch.from_numpy(data.planted_probability()),
    }


def split(data: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """The reference's Kaggle cut: days 0-5 train, the first half of day 6 test."""
    n = len(data["label"])
    day = n // 7
    train_rows, test_rows = slice(0, n - day), slice(n - day, n - day + (day + 1) // 2)
    return ({k: v[train_rows] for k, v in data.items()}, {k: v[test_rows] for k, v in data.items()})


def kaggle_inputs() -> dict[str, Input]:
    return {
        "label": Input(("label",), "label"),
        "dense": Input(tuple(DENSE), "float"),
        "sparse": Input(tuple(SPARSE), "int", KAGGLE_CARDINALITIES),
    }


@torch.no_grad()
def auc(model: DLRM, test: dict, device: str, batch: int = 65536) -> float:
    model.eval()
    scores = [
        model({k: test[k][i : i + batch].to(device) for k in ("dense", "sparse")}).float().cpu()
        for i in range(0, len(test["label"]), batch)
    ]
    model.train()
    return float(roc_auc_score(test["label"].numpy(), torch.cat(scores).numpy()))


def run_variant(name: str, train: dict, test: dict, args: argparse.Namespace, device: str) -> dict:
    """Train one variant for `args.epochs` over `train`; the held-out AUC every `args.eval_every` samples."""
    spec = VARIANTS[name]
    batch = spec["batch"]
    scale = math.sqrt(batch / 2048)  # square-root LR scaling for larger batches, with warm-up
    torch.manual_seed(0)
    model = DLRM(
        kaggle_inputs(),
        **ARCH,
        embedding_optimizer=spec["embedding_optimizer"],
        embedding_lr_scale=EMBEDDING_LR_SCALE,
        fused_embedding_update=spec["fused"],
    ).to(device)
    settings = cpu.choose(spec["precision"], args.threads)
    if device == "cpu":
        cpu.apply(settings, model)
    else:
        model.set_precision(torch.bfloat16 if spec["precision"] != "fp32" else None)
    opts = optimizers(model, LR * scale)
    n = len(train["label"])
    steps = args.epochs * (n // batch)
    warmup = 0 if batch == 2048 else min(50, steps // 10)
    schedulers = [
        torch.optim.lr_scheduler.LambdaLR(o, lambda s: lr_factor(s, steps, warmup, "constant")) for o in opts
    ]
    curve, trained, samples, next_eval = [], 0.0, 0, args.eval_every
    order = torch.randperm(n, generator=torch.Generator().manual_seed(1))
    for step in range(steps):
        rows = order[(step * batch) % (n - n % batch) :][:batch]
        b = {k: train[k][rows].to(device, non_blocking=True) for k in ("dense", "sparse", "label")}
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss = bce(model(b), b["label"])
        loss.backward()
        for o, s in zip(opts, schedulers, strict=True):
            o.step()
            s.step()
        if device != "cpu":
            torch.cuda.synchronize()
        trained += time.perf_counter() - start
        samples += batch
        if samples >= next_eval or step == steps - 1:
            curve.append({"samples": samples, "train_s": trained, "auc": auc(model, test, device)})
            next_eval += args.eval_every
            print(
                f"  {name:12s} {samples:9d} samples {trained:8.1f} s  auc {curve[-1]['auc']:.4f}", flush=True
            )
    return {
        "variant": name,
        "device": device,
        "batch": batch,
        "bf16": settings.bf16 if device == "cpu" else spec["precision"] != "fp32",
        "threads": settings.threads if device == "cpu" else None,
        "samples_per_s": samples / trained,
        "curve": curve,
    }


def speed(variants: list[str], train: dict, rounds: int, steps: int, threads: int | None) -> dict[str, float]:
    """Step time of each variant, interleaved (`steps` steps each, round-robin, `rounds` times) so that a
    loaded machine's swings hit all alike; the variants share one embedding table (timing only)."""
    models, opts, shared = {}, {}, None
    for name in variants:
        spec = VARIANTS[name]
        torch.manual_seed(0)
        small = [1] * len(KAGGLE_CARDINALITIES) if shared is not None else KAGGLE_CARDINALITIES
        inputs = kaggle_inputs() | {"sparse": Input(tuple(SPARSE), "int", tuple(small))}
        model = DLRM(
            inputs,
            **ARCH,
            embedding_optimizer=spec["embedding_optimizer"],
            fused_embedding_update=spec["fused"],
        )
        if shared is None:
            shared = model.tables.embedding.weight
        else:  # the real table sizes, one copy in memory
            model.tables.embedding.weight = shared
            model.tables.offsets.copy_(torch.tensor([0, *KAGGLE_CARDINALITIES[:-1]]).cumsum(0))
        cpu.apply(cpu.choose(spec["precision"], threads), model)
        models[name], opts[name] = model, optimizers(model, LR)
    times: dict[str, list[float]] = {name: [] for name in variants}
    n = len(train["label"])
    for r in range(rounds + 1):  # round 0 warms up
        for name in variants:
            batch = VARIANTS[name]["batch"]
            for k in range(steps):
                at = ((r * steps + k) * batch) % (n - batch)
                b = {key: train[key][at : at + batch] for key in ("dense", "sparse", "label")}
                start = time.perf_counter()
                for o in opts[name]:
                    o.zero_grad(set_to_none=True)
                bce(models[name](b), b["label"]).backward()
                for o in opts[name]:
                    o.step()
                if r:
                    times[name].append((time.perf_counter() - start) / batch)
        print(
            f"  round {r}: " + ", ".join(f"{v} {1 / np.median(t):.0f}/s" for v, t in times.items() if t),
            flush=True,
        )
    return {name: float(1 / np.median(t)) for name, t in times.items()}


def time_to(curve: list[dict], target: float) -> float | None:
    return next((p["train_s"] for p in curve if p["auc"] >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=65_536)
    parser.add_argument("--variants", nargs="+", default=["today", "rowwise", "fused", "fused_bf16"])
    parser.add_argument("--target", type=float, default=None, help="default: today's best AUC less 0.005")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: the usable cores)")
    parser.add_argument("--speed", type=int, default=0, help="rounds of interleaved step timing (0: none)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "synthetic_criteo")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "time_to_auc.json")
    args = parser.parse_args()

    data = planted_kaggle(args.rows, args.seed, args.data_dir)
    train, test = split(data)
    optimum = float(roc_auc_score(test["label"].numpy(), test["planted"].numpy()))
    print(
        f"{len(train['label'])} train rows, {len(test['label'])} held-out rows, planted optimum AUC {optimum:.4f}"
    )
    variants = [v for v in args.variants if v != "gpu_best"]
    if args.speed:
        rates = speed(variants, train, args.speed, 3, args.threads)
        print(f"\n{'variant':12s} {'samples/s':>10s} {'x today':>8s}   (interleaved, median step)")
        for name, rate in rates.items():
            print(f"{name:12s} {rate:10.0f} {rate / rates.get('today', rate):8.2f}")
        out = args.out.with_name("time_to_auc_speed.json")
        out.write_text(
            json.dumps({"rounds": args.speed, "cores": cpu.usable_cores(), "samples_per_s": rates}, indent=2)
        )
        print(f"wrote {out}")
        return
    runs = [run_variant(v, train, test, args, "cpu") for v in variants]
    if torch.cuda.is_available():
        runs.append(run_variant("gpu_best", train, test, args, "cuda"))
    base = next((r for r in runs if r["variant"] == "today"), runs[0])
    target = args.target or max(p["auc"] for p in base["curve"]) - 0.005  # today's best, less a hair
    gpu = next((r for r in runs if r["device"] == "cuda"), None)
    print(f"\ntarget AUC {target:.4f} (planted optimum {optimum:.4f})")
    print(
        f"{'variant':12s} {'device':6s} {'batch':>6s} {'bf16':>5s} {'to target s':>12s} {'samples/s':>10s} "
        f"{'speed-up':>9s} {'vs GPU':>7s} {'final AUC':>9s}"
    )
    for r in runs:
        r["time_to_target_s"] = time_to(r["curve"], target)
        r["speedup_vs_today"] = r["samples_per_s"] / base["samples_per_s"]
        r["ratio_to_gpu"] = (
            r["time_to_target_s"] / gpu["time_to_target_s"]
            if gpu and r["time_to_target_s"] and gpu["time_to_target_s"]
            else None
        )
        shown = f"{r['time_to_target_s']:.1f}" if r["time_to_target_s"] is not None else "not reached"
        vs_gpu = f"{r['ratio_to_gpu']:.2f}" if r["ratio_to_gpu"] else "-"
        print(
            f"{r['variant']:12s} {r['device']:6s} {r['batch']:6d} {str(r['bf16']):>5s} {shown:>12s} "
            f"{r['samples_per_s']:10.0f} {r['speedup_vs_today']:9.2f} {vs_gpu:>7s} {r['curve'][-1]['auc']:9.4f}"
        )
    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": cpu.usable_cores(),
            "native_bf16": cpu.native_bf16(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "torch": torch.__version__,
        },
        "rows": args.rows,
        "train_rows": len(train["label"]),
        "test_rows": len(test["label"]),
        "planted_optimum_auc": optimum,
        "target_auc": target,
        "runs": runs,
    }
    write_json_atomically(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
