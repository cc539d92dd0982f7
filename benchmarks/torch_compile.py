"""Does `torch.compile` of DLRM's MLPs pay on this CPU? Eager against compiled bottom and top MLPs, training
steps interleaved in one process (the same batches, fused row-wise Adagrad, bf16 where asked), samples/s each.

    .venv/bin/python benchmarks/torch_compile.py --threads 2

The model is the recipe's architecture at the reference's Kaggle MLP sizes (bottom 13-512-256-64-16, top
512-256-1) with 26 tables of 100k rows (the tables are untouched by compile; their size only sets the lookup
cost). Compile time (the first steps) is reported apart. Writes benchmarks/results/torch_compile.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from time_to_auc import ARCH, kaggle_inputs  # noqa: E402

from bluewhale.atomic import write_json_atomically  # noqa: E402
from bluewhale.dataset.criteo import SPARSE  # noqa: E402
from bluewhale.model.dlrm import DLRM  # noqa: E402
from bluewhale.model.inputs import Input  # noqa: E402
from bluewhale.train import cpu  # noqa: E402
from bluewhale.train.optim import optimizers  # noqa: E402
from bluewhale.train.trainer import bce  # noqa: E402

ROWS, BATCH = 100_000, 2048


def model(compiled: bool, bf16: bool) -> tuple[DLRM, list]:
    torch.manual_seed(0)
    inputs = kaggle_inputs() | {"sparse": Input(tuple(SPARSE), "int", (ROWS,) * len(SPARSE))}
    m = DLRM(
        inputs,
        **ARCH,
        embedding_optimizer="rowwise_adagrad",
        embedding_lr_scale=5.0,
        fused_embedding_update=True,
    )
    m.set_precision(torch.bfloat16 if bf16 else None)
    if compiled:  # the dense parts only: the fused lookup updates rows inside backward (a graph break)
        m.bottom, m.top = torch.compile(m.bottom), torch.compile(m.top)
    return m, optimizers(m, 0.003)


def step(m: DLRM, opts: list, batch: dict) -> None:
    for o in opts:
        o.zero_grad(set_to_none=True)
    bce(m(batch), batch["label"]).backward()
    for o in opts:
        o.step()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0, help="seeds the batches")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/torch_compile.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(args.seed)
    batches = [
        {
            "dense": torch.rand(BATCH, 13, generator=g) * 3,
            "sparse": torch.randint(0, ROWS, (BATCH, len(SPARSE)), generator=g),
            "label": (torch.rand(BATCH, generator=g) < 0.25).float(),
        }
        for _ in range(8)
    ]
    precisions = [True, False] if cpu.native_bf16() else [False]
    results = []
    for bf16 in precisions:
        variants = {"eager": model(False, bf16), "compiled": model(True, bf16)}
        warm = {}
        for name, (m, opts) in variants.items():
            start = time.perf_counter()
            for b in batches[:3]:
                step(m, opts, b)
            warm[name] = time.perf_counter() - start
        spent = dict.fromkeys(variants, 0.0)
        for _ in range(args.rounds):  # interleaved: a loaded machine's swings hit both alike
            for name, (m, opts) in variants.items():
                start = time.perf_counter()
                for b in batches:
                    step(m, opts, b)
                spent[name] += time.perf_counter() - start
        rate = {k: args.rounds * len(batches) * BATCH / v for k, v in spent.items()}
        results.append(
            {
                "precision": "bf16" if bf16 else "fp32",
                "eager_samples_per_s": rate["eager"],
                "compiled_samples_per_s": rate["compiled"],
                "compiled_over_eager": rate["compiled"] / rate["eager"],
                "first_3_steps_s": warm,
            }
        )
    print(f"{'precision':<10}{'eager/s':>10}{'compiled/s':>12}{'ratio':>8}{'compile s':>11}")
    for r in results:
        print(
            f"{r['precision']:<10}{r['eager_samples_per_s']:>10.0f}{r['compiled_samples_per_s']:>12.0f}"
            f"{r['compiled_over_eager']:>8.2f}{r['first_3_steps_s']['compiled']:>11.1f}"
        )
    machine = {"cpus": os.cpu_count(), "threads": args.threads, "load_average": os.getloadavg()}
    write_json_atomically(args.out, {"machine": machine, "torch": torch.__version__, "results": results})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
