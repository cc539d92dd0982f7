"""Data sets: readers for the published formats, and planted synthetic twins that write those formats.

A data set (built by `dataset=<name>`) offers what the `process` stage uses:
- column groups as attributes (`label`, `dense`, `sparse`, and where the format has them `sequence`,
  `timestamp`, `published`, `user`, `item`, `group`, `day`; `labels` for several tasks), all of them by `groups()`;
- `prepare()` (a synthetic set writes its files here), `fingerprint()` (path, size and mtime of every
  input file: the processing cache's input key);
- `read() -> (pyarrow.Table, BadRows)`: rows in file order; malformed rows stop the read with
  `file:line: reason` (`bad_rows=error`) or are dropped and counted (`bad_rows=skip`);
- `side_tables() -> {name: pyarrow.Table}` to join, and `planted_probability()` (None for real data);
- `planted_keys`: a tuple of raw column names (default `()`); every engine writes, after each processed
  split's data columns and its hidden `__row` (input row) and `__sub` (0, or k for a k-th negative
  sample), a hidden column `__key_<c>` per name holding column `c` as read, before any op (a negative's
  keys of its item and item columns are the sampled item's); a planted twin uses them to find each row's
  planted truth.
Times are int64 numbers since 1970 (seconds, or milliseconds where the format has them).

Engines: pandas calls `read()`; Modin's workers read a `CriteoFile` in byte ranges (`chunks()`,
`read_chunk()`) and call `read()` for the rest. The Spark engine reads every format here itself
(`bluewhale/engine/spark_readers/`, one module per format) with the same bad-row policy (`bad_rows`
attribute), messages and line numbers; any other data set is read with `read()` on the driver and handed
to Spark. Either way rows keep file order.
"""

from __future__ import annotations

import logging

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def build(cfg: DictConfig):
    """The data set `cfg` (the `dataset` group) names: its reader over `dataset.path`, or, where the
    path is not set and the member names a planted `twin`, that twin (a recipe runs with no download)."""
    twin = cfg.get("twin")
    if twin is not None and cfg.get("path") is None:
        log.info("dataset.path is not set: running on the planted twin %s (dataset.twin)", twin["_target_"])
        return instantiate(twin)
    if twin is None:
        return instantiate(cfg)
    real = OmegaConf.to_container(cfg, resolve=True)  # resolved here: interpolations need the root
    del real["twin"]
    return instantiate(real)


def _made_for() -> dict[str, list[str]]:
    """RecDP pipeline name -> the reader classes that claim it (their `pipelines`), over every format."""
    from bluewhale.dataset import amazon_books, criteo, criteo_1tb, movielens, outbrain, twitter  # noqa: F401
    from bluewhale.dataset.base import Dataset

    made_for: dict[str, list[str]] = {}
    classes, seen = [Dataset], set()
    while classes:
        cls = classes.pop()
        if cls in seen:
            continue
        seen.add(cls)
        classes += cls.__subclasses__()
        for name in vars(cls).get("pipelines", ()):
            made_for.setdefault(name, []).append(cls.__name__)
    return made_for


def check_pipeline(dataset, pipeline: str | None) -> None:
    """Fail before any work when `recdp=<pipeline>` is a pipeline made for another data format (e.g. the
    default Criteo pipeline on MovieLens), naming the pipelines made for this one. A pipeline no format
    claims (a user's own) is let through: its ops' columns are checked against the data set anyway."""
    own = tuple(getattr(dataset, "pipelines", ()))
    made_for = _made_for()
    if not own or not pipeline or pipeline in own or pipeline not in made_for:
        return
    kind = next(c for c in type(dataset).__mro__ if "pipelines" in vars(c)).__name__
    raise ValueError(
        f"recdp={pipeline} is a pipeline made for {' and '.join(sorted(set(made_for[pipeline])))} data, not for "
        f"{kind}; the pipelines made for {kind}: {', '.join(f'recdp={p}' for p in own)}"
    )
