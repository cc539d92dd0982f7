"""The data connector: processed tables to sharded batches of tensors for the trainer, through a cache
shared by runs, sweep jobs and ranks (`conf/connector/`: `pyarrow`, the default, or `petastorm`)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bluewhale.connector.cache import Cache
    from bluewhale.connector.converter import Converted, convert
    from bluewhale.connector.reader import Batch, Features, Loader, make_loader

# Imported on first use, so `python -m bluewhale.connector.cache` starts without loading torch.
_EXPORTS = {
    "Cache": "cache",
    "Converted": "converter",
    "convert": "converter",
    "Batch": "reader",
    "Features": "reader",
    "Loader": "reader",
    "make_loader": "reader",
}
__all__ = ["Batch", "Cache", "Connector", "Converted", "Features", "Loader", "convert", "make_loader"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"bluewhale.connector.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'bluewhale.connector' has no attribute {name!r}")


class Connector:
    """Converts tables into the cache at `cache_dir` and serves them as batches: shuffled and, if
    `drop_last`, in full batches only for training; in file order with every row for scoring."""

    name = "pyarrow"

    def __init__(
        self,
        cache_dir: str,
        max_cache_gb: float | None = None,
        rows_per_group: int = 65536,
        rows_per_file: int = 1 << 20,
        num_workers: int = 0,
        prefetch: int = 2,
        shuffle_buffer: int = 65536,
        drop_last: bool = False,
    ) -> None:
        from bluewhale.connector.cache import Cache

        max_bytes = None if max_cache_gb is None else int(max_cache_gb * 2**30)
        self.cache = Cache(cache_dir, max_bytes)
        self.rows_per_group, self.rows_per_file = rows_per_group, rows_per_file
        self.num_workers, self.prefetch = num_workers, prefetch
        self.shuffle_buffer, self.drop_last = shuffle_buffer, drop_last

    def convert(self, source: Any, fingerprint: str | None = None, config: dict | None = None) -> Converted:
        """`source` (a table, or a function returning one) in the cache; see `converter.convert`."""
        from bluewhale.connector.converter import convert

        return convert(source, self.cache, fingerprint, config, self.rows_per_group, self.rows_per_file)

    def loader(
        self,
        data: Converted | str,
        features: Features,
        batch_size: int,
        train: bool,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> Loader:
        """Batches of `data` (a converted entry or a parquet URL) for this rank."""
        from bluewhale.connector.converter import Converted
        from bluewhale.connector.reader import make_loader

        url = data.url if isinstance(data, Converted) else data
        return make_loader(
            url,
            features,
            batch_size,
            shuffle=train,
            drop_last=self.drop_last and train,
            seed=seed,
            rank=rank,
            world_size=world_size,
            num_workers=self.num_workers,
            prefetch=self.prefetch,
            shuffle_buffer=self.shuffle_buffer,
            keep=data,
        )
