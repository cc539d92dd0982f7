"""The optional Petastorm backend: the same cache entries, read by Petastorm's `make_batch_reader`.

Petastorm 0.12.1 needs pyarrow < 15 and numpy < 2, which the main environment cannot have (Spark's
Arrow paths, Ray Data), so it lives in its own environment: `make setup-petastorm` builds
`.venv-petastorm` from requirements-petastorm.txt. Petastorm shards by row group (group i goes to rank
i mod world_size), so ranks are not balanced to a row as with the pyarrow backend, and
`drop_last` is per rank only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from bluewhale.connector import Connector
from bluewhale.connector.converter import Converted
from bluewhale.connector.reader import (
    Arrays,
    Batch,
    Features,
    count_batches,
    default_rank,
    in_order,
    layout,
    list_units,
    shuffled,
    to_arrays,
)


def _require_petastorm():
    try:
        import petastorm
    except ImportError as error:
        raise ImportError(
            "connector=petastorm needs petastorm, which is not installed here: run `make setup-petastorm` "
            "and use .venv-petastorm/bin/bluewhale (petastorm needs pyarrow < 15 and numpy < 2)"
        ) from error
    return petastorm


class PetastormLoader:
    """Batches of one rank read through `petastorm.make_batch_reader`; reshuffled each pass."""

    def __init__(
        self,
        url: str,
        features: Features,
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        seed: int,
        rank: int,
        world_size: int,
        workers_count: int,
        shuffle_buffer: int,
        keep: Any = None,
    ) -> None:
        self.url, self.features, self.batch_size = url, features, batch_size
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.rank, self.world_size = rank, world_size
        self.workers_count, self.shuffle_buffer, self.keep = workers_count, shuffle_buffer, keep
        units = list_units(url)
        self.rows = sum(u.rows for i, u in enumerate(units) if i % world_size == rank)
        self.layout = layout(url, features, units)
        self.epoch = 0

    def __len__(self) -> int:
        return count_batches([(0, self.rows)], self.batch_size, True, self.drop_last)

    def _chunks(self, reader) -> Iterator[Arrays]:
        for group in reader:
            table = pa.table({name: getattr(group, name) for name in self.features.columns})
            yield to_arrays(table, self.layout, self.url)

    def __iter__(self) -> Iterator[Batch]:
        petastorm = _require_petastorm()
        epoch, self.epoch = self.epoch, self.epoch + 1
        url = self.url if "://" in self.url else f"file://{self.url}"
        with petastorm.make_batch_reader(
            url,
            schema_fields=self.features.columns,
            # scoring keeps file order: one reader in this thread; training reads row groups in parallel
            reader_pool_type="thread" if self.shuffle else "dummy",
            workers_count=self.workers_count if self.shuffle else 1,
            shuffle_row_groups=self.shuffle,
            seed=self.seed + epoch,
            num_epochs=1,
            cur_shard=self.rank if self.world_size > 1 else None,
            shard_count=self.world_size if self.world_size > 1 else None,
        ) as reader:
            chunks = self._chunks(reader)
            if self.shuffle:
                rng = np.random.default_rng([self.seed, epoch, self.rank])
                batches = shuffled(chunks, self.batch_size, self.shuffle_buffer, rng, self.drop_last)
            else:
                batches = in_order(chunks, self.batch_size, self.drop_last)
            keys = self.layout.keys
            for arrays in batches:
                yield {k: torch.from_numpy(a) for k, a in zip(keys, arrays, strict=True)}


class PetastormConnector(Connector):
    """The pyarrow connector's converter and cache, with Petastorm reading the entries."""

    name = "petastorm"

    def __init__(self, *args: Any, workers_count: int = 2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workers_count = workers_count

    def loader(
        self,
        data: Converted | str,
        features: Features,
        batch_size: int,
        train: bool,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> PetastormLoader:
        _require_petastorm()  # fail before training starts, not at its first batch
        if rank is None or world_size is None:
            rank, world_size = default_rank()
        url = data.url if isinstance(data, Converted) else data
        return PetastormLoader(
            url,
            features,
            batch_size,
            shuffle=train,
            drop_last=self.drop_last and train,
            seed=seed,
            rank=rank,
            world_size=world_size,
            workers_count=self.workers_count,
            shuffle_buffer=self.shuffle_buffer,
            keep=data,
        )
