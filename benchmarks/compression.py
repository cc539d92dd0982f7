"""Compression side by side in one run: a DLRM trained on the planted Criteo twin, then every variant
compressed from that same logged model (`compression.source=runs:/<id>/model`) through the pipeline's own
compress stage, each measured against the original on the same test rows; and int8 against fp32 on the
DLRM's top MLP alone. Prints tables and writes benchmarks/results/compression.json.

    .venv/bin/python benchmarks/compression.py                          # 200k rows, Kaggle cardinalities
    .venv/bin/python benchmarks/compression.py --rows 1000000 --variants int8 qr8_int8

The twin draws ids from Criteo Kaggle's 26 vocabulary sizes (33.8M in all); with freq_threshold 1 every id
seen in the train rows gets a table row, so the tables grow with --rows (tens of millions need ~45M rows).
Targets: >= 10x smaller with <= 0.002 AUC lost (TT-Rec, MLSys 2021: 117x on Criteo Kaggle, no loss);
int8 MLP >= 1.5x the fp32 throughput.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from bluewhale.atomic import write_json_atomically

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

VARIANTS = {  # name -> compression overrides
    "int8": ["compression=int8"],
    "int8_static": ["compression=int8", "compression.int8.mode=static"],
    "fp16_rows": ["compression=fp16_embeddings"],
    "int8_rows": ["compression=int8_embeddings"],
    "int8_rows_int8": ["compression=[int8_embeddings,int8]"],
    "prune_int8": ["compression=[prune,int8]"],
    "magnitude_prune": ["compression=magnitude_prune", "compression.magnitude_prune.final_sparsity=0.8"],
    "qr4_int8": [
        "compression=[qr_embeddings,int8_embeddings,int8]",
        "compression.qr_embeddings.collisions=4",
    ],
    "qr8_int8": [
        "compression=[qr_embeddings,int8_embeddings,int8]",
        "compression.qr_embeddings.collisions=8",
    ],
    "distill_dim4": [
        "compression=[distill,int8_embeddings]",
        "+compression.distill.student={embedding_dim:4,bottom_mlp:[32,16],top_mlp:[64,32]}",
    ],
}


def mlp_throughput(model: torch.nn.Module, rows: int = 16384, repeats: int = 7) -> dict[str, float]:
    """Rows per second of the DLRM's top MLP alone: fp32, dynamic int8, static int8 (same inputs)."""
    from bluewhale.compress import quantize

    top = model.top.eval()
    x = torch.randn(rows, top[0].in_features).abs()
    dynamic = quantize.dynamic_int8(torch.nn.Sequential(*top), "mlp")
    holder = torch.nn.Module()
    holder.top = torch.nn.Sequential(*[m for m in top])
    static = quantize.static_int8(_Wrap(holder), [x[:2048]] * 4, 4, "mlp").inner.top

    def best(m: torch.nn.Module) -> float:
        with torch.no_grad():
            m(x)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                m(x)
                times.append(time.perf_counter() - start)
        return rows / min(times)

    out = {"fp32": best(top), "int8_dynamic": best(dynamic), "int8_static": best(static)}
    return out | {f"{k}_speedup": v / out["fp32"] for k, v in out.items() if k != "fp32"}


class _Wrap(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.top(x)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--cardinalities", default="kaggle")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--source", default=None, help="runs:/<id>/model in --folder's mlflow.db: skip training"
    )
    parser.add_argument("--folder", default=None, help="work folder (data, mlflow.db); default: a temp one")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "compression.json"))
    args = parser.parse_args()

    from bluewhale.app import compose_experiment
    from bluewhale.pipeline import run

    folder = Path(args.folder or tempfile.mkdtemp(prefix="bw-compress-"))
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    common = [
        f"dataset.rows={args.rows}",
        f"dataset.cardinalities={args.cardinalities}",
        "recdp.ops.4.freq_threshold=1",  # every id seen in train gets a row: the tables grow with the data
        f"train.epochs={args.epochs}",
        "train.progress=false",
        f"tracking.uri=sqlite:///{folder}/mlflow.db",
        f"paths.data_dir={folder}/data",
    ]
    import mlflow

    start = time.perf_counter()
    if args.source:
        mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
        source = args.source
        trained = dict(mlflow.get_run(source.split("/")[1]).data.metrics)
    else:
        trained = run(compose_experiment(common))
        source = f"runs:/{mlflow.last_active_run().info.run_id}/model"
    print(
        f"trained in {time.perf_counter() - start:.0f} s: test AUC {trained['test_auc']:.4f}; source {source}"
    )
    results = {}
    for name in args.variants:
        overrides = [*common, "pipeline.stages=[process,compress,evaluate]", f"compression.source={source}"]
        start = time.perf_counter()
        try:
            metrics = run(compose_experiment([*overrides, *VARIANTS[name]]))
        except Exception as error:  # a refused or failed variant is a row of the table, not the end
            results[name] = {"error": str(error).splitlines()[0]}
            print(f"{name}: failed: {results[name]['error']}")
            continue
        results[name] = {k: v for k, v in metrics.items() if k.startswith(("compress", "original", "test_"))}
        results[name]["wall_s"] = time.perf_counter() - start
        print(f"{name}: done in {results[name]['wall_s']:.0f} s")

    model = mlflow.pytorch.load_model(source)
    mlp = mlp_throughput(model)
    table = model.tables.embedding
    header = f"{'variant':16} {'disk MB':>9} {'x smaller':>9} {'mem x':>7} {'params':>11} {'dAUC':>8} "
    header += f"{'lat b1 ms':>9} {'lat x':>6} {'rows/s':>9} {'thr x':>6}"
    print(
        f"\nDLRM, {args.rows} rows, tables {table.num_embeddings} x {table.embedding_dim} "
        f"(cardinalities {args.cardinalities}); torch threads {torch.get_num_threads()}"
    )
    first = next((r for r in results.values() if "error" not in r), None)
    if first:
        print(
            f"original: {first['original_disk_mb']:.1f} MB on disk, {first['original_parameters']:.0f} parameters, "
            f"test AUC {first['original_test_auc']:.4f}, {first['original_latency_b1_ms']:.2f} ms at batch 1, "
            f"{first['original_throughput_rows_per_s']:.0f} rows/s"
        )
    print(header)
    for name, r in results.items():
        if "error" in r:
            print(f"{name:16} refused/failed: {r['error']}")
            continue
        print(
            f"{name:16} {r['compressed_disk_mb']:9.2f} {r['compression_disk_ratio']:9.1f} "
            f"{r['compression_memory_ratio']:7.1f} {r['compressed_parameters']:11.0f} "
            f"{r['compressed_delta_test_auc']:+8.4f} {r['compressed_latency_b1_ms']:9.2f} "
            f"{r['compression_latency_speedup']:6.2f} {r['compressed_throughput_rows_per_s']:9.0f} "
            f"{r['compression_throughput_speedup']:6.2f}"
        )
    print(
        f"\ntop MLP alone, 16384 rows: fp32 {mlp['fp32']:.0f} rows/s; int8 dynamic {mlp['int8_dynamic_speedup']:.2f}x, "
        f"int8 static {mlp['int8_static_speedup']:.2f}x"
    )
    out = {
        "rows": args.rows,
        "cardinalities": args.cardinalities,
        "table_rows": table.num_embeddings,
        "embedding_dim": table.embedding_dim,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "trained": trained,
        "variants": results,
        "top_mlp_throughput": mlp,
    }
    write_json_atomically(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
