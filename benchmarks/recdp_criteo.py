"""RecDP benchmark: the DLRM Criteo pipeline on each engine, next to a hand-written pandas script, in one run.

    .venv/bin/python benchmarks/recdp_criteo.py                       # 1M, 4M, 8M rows
    .venv/bin/python benchmarks/recdp_criteo.py --sizes 100000 400000 800000 --engines pandas script
    .venv/bin/python benchmarks/recdp_criteo.py --sizes 1000000 --days 4  # recdp=criteo_1tb_dlrm on 4 day files
    .venv/bin/python benchmarks/recdp_criteo.py --sizes 1000000 --dlrm /work/ref/dlrm  # vs facebookresearch/dlrm

`--dlrm CHECKOUT` also times, on the 1M-line file (the smallest size), the whole command
`bluewhale dataset=criteo_kaggle dataset.path=FILE engine=E pipeline.stages=[process]` per engine against
facebookresearch/dlrm's `data_utils.getCriteoAdData` (a reference, never vendored). It needs numpy < 2,
so it runs in a venv of its own, outside this repository:

    git clone <mirror of github.com/facebookresearch/dlrm> /work/ref/dlrm
    python3.11 -m venv /work/ref/venv-dlrm && /work/ref/venv-dlrm/bin/pip install numpy==1.26.4

Each (engine, size) runs in a fresh process on a planted Criteo-format file. Time is the processing
alone (read, ops, write parquet), after the engine started (Spark's session, Modin's workers: reported
apart); peak memory is the largest summed RSS of the process and its children (JVM, dask workers).
Prints a table of rows/s, peak memory and the time ratio to the script; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bluewhale.atomic import write_json_atomically

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("script", "pandas", "spark", "modin")


def handwritten(path: Path, out: Path) -> None:
    """What a data scientist would write by hand: the same work as conf/recdp/criteo_dlrm.yaml."""
    import numpy as np
    import pandas as pd

    from bluewhale.dataset.criteo import COLUMNS, DENSE, SPARSE

    df = pd.read_csv(path, sep="\t", header=None, names=COLUMNS, dtype={c: str for c in SPARSE})
    df[DENSE] = np.log1p(df[DENSE].fillna(0).clip(lower=0).astype(np.float32))
    train_rows = len(df) - round(len(df) * 0.142857)
    for c in SPARSE:
        col = df[c].fillna("")
        counts = col.iloc[:train_rows].value_counts()
        counts = counts[counts >= 3]
        ordered = (
            counts.rename("n").rename_axis("v").reset_index().sort_values(["n", "v"], ascending=[False, True])
        )
        ids = pd.Series(np.arange(1, len(ordered) + 1, dtype=np.int32), index=ordered["v"])
        df[c] = col.map(ids).fillna(0).astype(np.int32)
    df.iloc[:train_rows].to_parquet(out / "train.parquet", index=False)
    df.iloc[train_rows:].to_parquet(out / "test.parquet", index=False)


def one(engine: str, rows: int, data_dir: Path, workers: int, days: int = 0) -> dict:
    """Run one engine on one size in this process; return its measurements."""
    import yaml

    from bluewhale import recdp
    from bluewhale.dataset.synthetic_criteo import SyntheticCriteo
    from bluewhale.dataset.synthetic_criteo_1tb import SyntheticCriteo1TB

    if days:
        dataset = SyntheticCriteo1TB(rows=rows, seed=0, dir=str(data_dir), days=days)
    else:
        dataset = SyntheticCriteo(rows=rows, seed=0, dir=str(data_dir))
    dataset.prepare()
    started = time.perf_counter()
    if engine == "spark":
        from bluewhale.engine.spark import SparkEngine

        runner = SparkEngine(master=f"local[{workers}]", driver_memory="8g")
        runner.session()
    elif engine == "modin":
        from bluewhale.engine.modin import ModinEngine

        runner = ModinEngine(workers=workers)
        runner.start()
    elif engine == "pandas":
        from bluewhale.engine.pandas import PandasEngine

        runner = PandasEngine()
    startup = time.perf_counter() - started
    pipeline = yaml.safe_load((ROOT / f"conf/recdp/criteo{'_1tb' if days else ''}_dlrm.yaml").read_text())
    with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
        start = time.perf_counter()
        if engine == "script" and days:
            raise SystemExit("the hand-written script reads one file, not day files")
        if engine == "script":
            handwritten(dataset.path, Path(tmp))
        else:
            recdp.process(dataset, pipeline, runner, tmp)
        seconds = time.perf_counter() - start
    return {"engine": engine, "rows": rows, "seconds": seconds, "startup_s": startup}


def peak_rss(pid: int, stop: threading.Event, peak: list[float]) -> None:
    """Sample the summed RSS of `pid` and its descendants until `stop` is set."""
    import psutil

    root = psutil.Process(pid)
    while not stop.is_set():
        try:
            procs = [root, *root.children(recursive=True)]
            total = sum(p.memory_info().rss for p in procs if p.is_running())
            peak[0] = max(peak[0], total)
        except psutil.Error:
            pass
        stop.wait(0.2)


def measure(engine: str, rows: int, args) -> dict:
    # -P: not this folder first on the path (a script named like a package would hide it)
    command = [sys.executable, "-P", __file__, "--one", engine, "--sizes", str(rows), "--dir", str(args.dir)]
    command += ["--workers", str(args.workers), "--days", str(args.days)]
    return sampled(command, {"engine": engine, "rows": rows}, rows)


def sampled(command: list[str], what: dict, rows: int, timed: bool = False) -> dict:
    """Run `command`, sampling its (and its children's) summed RSS; `timed`: the wall time is the result."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    stop, peak = threading.Event(), [0.0]
    sampler = threading.Thread(target=peak_rss, args=(process.pid, stop, peak), daemon=True)
    sampler.start()
    output, _ = process.communicate()
    stop.set()
    sampler.join()
    if process.returncode != 0:
        return what | {"error": f"exit {process.returncode}"}
    if timed:
        result = what | {"seconds": time.perf_counter() - start, "startup_s": 0.0}
    else:
        result = what | json.loads(output.strip().splitlines()[-1])
    return result | {"peak_rss_gib": peak[0] / 2**30, "rows_per_s": rows / result["seconds"]}


DLRM_SCRIPT = """
import shutil, sys, tempfile
sys.path.insert(0, sys.argv[1])
from data_utils import getCriteoAdData
folder = tempfile.mkdtemp(dir=sys.argv[3])
shutil.copy(sys.argv[2], folder + "/train.txt")  # it writes its day splits and .npz files beside the input
getCriteoAdData(folder + "/train.txt", "kaggleAdDisplayChallenge_processed")  # a name in its folder
shutil.rmtree(folder)
"""


STORE = "import sys, mlflow; mlflow.MlflowClient(sys.argv[1]).search_experiments()"  # builds the tables


def commands(rows: int, args) -> list[dict]:
    """Whole-command wall times on the `rows`-line file: each engine's `bluewhale ... stages=[process]`
    (with a new MLflow store, and with one that exists) and facebookresearch/dlrm's getCriteoAdData."""
    from bluewhale.dataset.synthetic_criteo import SyntheticCriteo

    path = SyntheticCriteo(rows=rows, seed=0, dir=str(args.dir)).path
    out = []
    dlrm = [args.dlrm_python, "-c", DLRM_SCRIPT, str(args.dlrm), str(path), str(args.dir)]
    out.append(sampled(dlrm, {"engine": "dlrm getCriteoAdData", "rows": rows, "command": True}, rows, True))
    print(f"  dlrm    {rows:>10,d} rows: {out[-1]}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as kept:
        # a user's store after their first run: MLflow's tables exist (a new store builds them, ~5 s)
        existing = f"sqlite:///{kept}/mlflow.db"
        subprocess.run([sys.executable, "-c", STORE, existing], check=True)
        for engine, store in [(e, s) for e in args.engines if e != "script" for s in ("new", "existing")]:
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                command = [str(Path(sys.executable).parent / "bluewhale"), "dataset=criteo_kaggle"]
                command += [f"dataset.path={path}", f"engine={engine}", "pipeline.stages=[process]"]
                command += [f"paths.processed_dir={tmp}/processed", f"hydra.run.dir={tmp}/run"]
                command += [
                    f"tracking.uri={existing if store == 'existing' else f'sqlite:///{tmp}/mlflow.db'}"
                ]
                if engine == "spark":
                    # quoted: unquoted, Hydra's override grammar reads the brackets as a list
                    command.append(f"engine.master='local[{args.workers}]'")
                what = {"engine": f"bluewhale {engine}", "rows": rows, "command": True, "mlflow_store": store}
                out.append(sampled(command, what, rows, True))
            print(
                f"  {engine:7s} {rows:>10,d} rows (command, {store} store): {out[-1]}",
                file=sys.stderr,
                flush=True,
            )
    reference = out[0].get("seconds")
    for r in out[1:]:
        if reference and "seconds" in r:
            r["speedup_vs_dlrm"] = reference / r["seconds"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 4_000_000, 8_000_000])
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--dir", type=Path, default=ROOT / "data" / "bench_criteo")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "recdp_criteo.json")
    parser.add_argument(
        "--days", type=int, default=0, help="write N planted day files: recdp=criteo_1tb_dlrm"
    )
    parser.add_argument("--dlrm", type=Path, help="a facebookresearch/dlrm checkout: time its preprocessing")
    parser.add_argument("--dlrm-python", default="/work/ref/venv-dlrm/bin/python", help="python with numpy<2")
    parser.add_argument("--one", choices=ENGINES, help=argparse.SUPPRESS)  # a child run
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.days and args.out == parser.get_default("out"):
        args.out = args.out.with_name("recdp_criteo_1tb.json")
    if args.one:
        print(json.dumps(one(args.one, args.sizes[0], args.dir, args.workers, args.days)))
        return

    results = []
    if args.days:
        args.engines = [e for e in args.engines if e != "script"]
    for rows in args.sizes:
        from bluewhale.dataset.synthetic_criteo import SyntheticCriteo
        from bluewhale.dataset.synthetic_criteo_1tb import SyntheticCriteo1TB

        # written once, outside the timings
        if args.days:
            SyntheticCriteo1TB(rows=rows, seed=0, dir=str(args.dir), days=args.days).prepare()
        else:
            SyntheticCriteo(rows=rows, seed=0, dir=str(args.dir)).prepare()
        for engine in args.engines:
            results.append(measure(engine, rows, args))
            print(f"  {engine:7s} {rows:>10,d} rows: {results[-1]}", file=sys.stderr, flush=True)
    script = {r["rows"]: r["seconds"] for r in results if r["engine"] == "script" and "seconds" in r}
    for r in results:
        if "seconds" in r and r["rows"] in script:
            r["ratio_to_script"] = r["seconds"] / script[r["rows"]]
    smallest = min(args.sizes)
    for r in results:  # how time grows with rows, against the smallest size on the same engine
        base = next((b for b in results if b["engine"] == r["engine"] and b["rows"] == smallest), None)
        if base and "seconds" in r and "seconds" in base:
            r["time_growth"] = r["seconds"] / base["seconds"]
            r["rows_growth"] = r["rows"] / smallest

    if args.dlrm:
        results += commands(min(args.sizes), args)
    header = f"{'engine':8s}{'rows':>12s}{'seconds':>10s}{'startup s':>11s}{'rows/s':>12s}{'peak GiB':>10s}{'vs script':>11s}{'time x':>8s}{'rows x':>8s}"
    print(header)
    for r in results:
        if "error" in r:
            print(f"{r['engine']:8s}{r['rows']:>12,d}  {r['error']}")
            continue
        print(
            f"{r['engine']:8s}{r['rows']:>12,d}{r['seconds']:>10.1f}{r['startup_s']:>11.1f}{r['rows_per_s']:>12,.0f}"
            f"{r['peak_rss_gib']:>10.2f}{r.get('ratio_to_script', float('nan')):>11.2f}"
            f"{r.get('time_growth', float('nan')):>8.2f}{r.get('rows_growth', float('nan')):>8.1f}"
            + (f"  {r['speedup_vs_dlrm']:.1f}x dlrm" if "speedup_vs_dlrm" in r else "")
            + (f" ({r['mlflow_store']} MLflow store)" if "mlflow_store" in r else "")
        )
    meta = {"cpus": os.cpu_count(), "workers": args.workers, "sizes": args.sizes, "days": args.days}
    meta["load_average"] = os.getloadavg()
    write_json_atomically(args.out, {"machine": meta, "results": results})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
