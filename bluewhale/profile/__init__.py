"""Data exploration: a profile of the raw input and of the processed splits (the `profile` stage).

Per column: missing rate, cardinality, top values, the log-log frequency curve, histograms of numeric
columns; the label rate per split; and what the pipeline changed (rows in and out, bad rows dropped, the
share of each id column folded to id 0). Computed on the chosen engine: Spark aggregations under
`engine=spark`, in memory otherwise (sampled above `profile.sample_rows`, and the page says so). The result
is one self-contained HTML page and its figures as JSON (`profile.json`).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from bluewhale.profile.page import render
from bluewhale.profile.stats import Roles, arrow_profile, spark_profile

log = logging.getLogger(__name__)

HIDDEN = "__"  # the engines' hidden columns (row position, planted keys) are not data


def _data_columns(names: list[str]) -> list[str]:
    return [n for n in names if not n.startswith(HIDDEN)]


def _split_names(processed) -> list[str]:
    return [s for s in ("train", "valid", "test") if s in processed.meta["rows"]]


def profile(dataset, recdp: dict, engine, processed=None, settings: dict | None = None) -> dict:
    """The profile report of `dataset`'s raw input and, when `processed` is given, of its splits.

    `recdp` is the pipeline config (its split tells Spark's reader how rows are numbered), `engine` the
    instantiated engine; `settings` the `profile` config (top, bins, sample_rows, seed)."""
    settings = {"top": 10, "bins": 30, "sample_rows": 1_000_000, "seed": 0, **(settings or {})}
    spark = getattr(engine, "name", None) == "spark"
    groups = dataset.groups()
    raw_roles = Roles(labels=list(groups.get("label", [])), numeric=list(groups.get("dense", [])))
    report: dict = {
        "dataset": type(dataset).__name__,
        "pipeline": recdp.get("name"),
        "computed_on": "Spark (exact aggregations)" if spark else "pandas/Arrow in memory",
        "tables": {},
        "rows": {},
        "label_rates": {},
    }
    splits: dict[str, dict] = {}
    scratch = Path(tempfile.mkdtemp(prefix="bluewhale-profile-"))  # Spark's reader may stage files here
    try:
        _fill(report, splits, dataset, recdp, engine, processed, settings, raw_roles, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


def _fill(report, splits, dataset, recdp, engine, processed, settings, raw_roles, scratch) -> None:
    spark = getattr(engine, "name", None) == "spark"
    if spark:
        raw, read_split = _spark_tables(engine, dataset, recdp, processed, scratch)
        report["tables"]["raw input"] = spark_profile(raw, raw_roles, settings["top"], settings["bins"])
    else:
        table, _ = dataset.read()
        table = table.select(_data_columns(table.column_names))
        report["tables"]["raw input"] = arrow_profile(
            table, raw_roles, settings["top"], settings["bins"], settings["sample_rows"], settings["seed"]
        )
    report["rows"]["raw input"] = report["tables"]["raw input"]["rows"]
    report["label_rates"]["raw input"] = _label_rates(report["tables"]["raw input"])
    if processed is not None:
        meta = processed.meta
        out = meta["groups"]
        roles = Roles(
            labels=list(out.get("label", [])),
            numeric=list(out.get("dense", [])),
            ids=[c for g, cols in out.items() if g not in ("label", "dense") for c in cols],
        )
        for split in _split_names(processed):
            if spark:
                splits[split] = spark_profile(read_split(split), roles, settings["top"], settings["bins"])
            else:
                table = processed.table(split)
                table = table.select(_data_columns(table.column_names))
                splits[split] = arrow_profile(
                    table, roles, settings["top"], settings["bins"], settings["sample_rows"], settings["seed"]
                )
            report["rows"][split] = splits[split]["rows"]
            report["label_rates"][split] = _label_rates(splits[split])
        report["tables"]["processed train split"] = splits["train"]
        report["splits"] = splits
        report["changes"] = _changes(report["tables"]["raw input"], splits, meta)


def _label_rates(profile: dict) -> dict[str, float]:
    return {n: s["label_rate"] for n, s in profile["columns"].items() if "label_rate" in s}


def _changes(raw: dict, splits: dict[str, dict], meta: dict) -> dict:
    """Rows in and out, bad rows dropped, and per id column its share at id 0 in each split."""
    folded = {}
    for name, stats in splits["train"]["columns"].items():
        if "zero_rate" in stats:
            folded[name] = {
                "raw_missing_rate": raw["columns"].get(name, {}).get("missing_rate"),
                "zero_rate": {s: p["columns"][name].get("zero_rate") for s, p in splits.items()},
            }
    return {
        "input_rows": meta.get("input_rows"),
        "bad_rows": meta.get("bad_rows", {}).get("count", 0),
        "rows": dict(meta["rows"]),
        "folded": folded,
    }


def _spark_tables(engine, dataset, recdp: dict, processed, scratch: Path):
    """The raw input as Spark reads it for the pipeline (hidden columns dropped), and a reader of splits."""
    from bluewhale.engine.spark_readers import read_input
    from bluewhale.recdp import parse_pipeline

    spark = engine.session()
    dataset.prepare()
    df, _, _ = read_input(spark, dataset, parse_pipeline(recdp, dataset).split, scratch)
    raw = df.select(*_data_columns(df.columns))

    def read_split(split: str):
        df = spark.read.parquet(str(processed.path / f"{split}.parquet"))
        return df.select(*_data_columns(df.columns))

    return raw, read_split


def write(report: dict, folder: Path) -> Path:
    """`profile.html` and `profile.json` in `folder` (written whole, then renamed); the page's path."""
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / "profile.html"
    for path, text in ((page, render(report)), (folder / "profile.json", json.dumps(report, default=str))):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return page
