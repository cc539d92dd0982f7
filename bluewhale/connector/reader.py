"""Parquet parts (a local folder or any fsspec URL) to batches of named feature groups, sharded so that in
one epoch every row is read exactly once across all ranks and DataLoader workers.

A batch is a dict from group name to tensor (see `Features`): labels, dense floats, categorical ids, and
list columns (histories) padded to a fixed length with their lengths beside them.

How an epoch is cut: the row groups of all files, in file order (or shuffled with the seed and the epoch
number: the same order on every rank), are laid end to end as rows 0..N-1. Rank r takes the r-th of
`world_size` equal slices, so ranks are balanced to a row. Training (`shuffle`): each worker takes an
equal contiguous piece of its rank's slice and mixes it through a bounded shuffle buffer. In order (no
shuffle, for scoring): the rank's slice is cut into batches dealt round-robin to workers, which the
DataLoader collects round-robin again, so batches arrive in file order. Row groups are read whole and
sliced with Arrow (zero copy), columns go to NumPy in bulk, and a thread reads ahead; no per-row Python.
"""

from __future__ import annotations

import bisect
import itertools
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from fsspec.implementations.local import LocalFileSystem
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

Batch = dict[str, torch.Tensor]  # group name -> tensor; see `Features` for the shapes
Arrays = tuple[np.ndarray, ...]  # a batch's arrays in `Layout.keys` order, before they become tensors


@dataclass(frozen=True)
class Unit:
    """One row group of one file: the smallest piece that is read from storage."""

    path: str
    group: int
    rows: int


@dataclass(frozen=True)
class Features:
    """The feature groups a batch holds: group name -> the columns it stacks, in order.

    Shapes, by what the columns hold: the `label` group gives float32 [B] for one column and [B, T] for
    T tasks; a group of float columns float32 [B, n]; of integer columns (ids) int64 [B, n]; of list
    columns int64 [B, n, L], padded with 0 to the longest list of the data (L), with `<group>_lengths`
    int64 [B, n] beside it. A null list counts as empty; any other null is an error.
    """

    groups: Mapping[str, Sequence[str]]
    label: str = "label"

    @property
    def columns(self) -> list[str]:
        """Every column read, once each, in first-use order."""
        return list(dict.fromkeys(c for cols in self.groups.values() for c in cols))


@dataclass(frozen=True)
class Group:
    """How one feature group becomes arrays: its columns, kind (label, float, int, list) and list length."""

    name: str
    columns: tuple[str, ...]
    kind: str
    length: int = 0  # list groups: the padded length L


@dataclass(frozen=True)
class Layout:
    """The groups of `Features` resolved against the data's schema."""

    groups: tuple[Group, ...]

    @property
    def keys(self) -> list[str]:
        """The batch keys, in the order of the arrays `to_arrays` returns."""
        return [
            k for g in self.groups for k in ((g.name, f"{g.name}_lengths") if g.kind == "list" else (g.name,))
        ]


def column_kind(field: pa.Field, where: str) -> str:
    """float, int or list (of integers), or a clear error for anything a model cannot take."""
    t = field.type
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return "int"
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_integer(t.value_type):
        return "list"
    raise ValueError(
        f"{where}: column {field.name!r} holds {t}; the connector serves numbers and lists of ids "
        "(turn text into ids in the RecDP pipeline: categorify or hash_mod)"
    )


def layout(url: str, features: Features, units: list[Unit]) -> Layout:
    """Resolve `features` against the schema of the data at `url` (and its longest lists)."""
    fs, _ = fsspec.core.url_to_fs(url)
    with fs.open(units[0].path, "rb") as f:
        schema = pq.read_schema(f)
    groups = []
    for name, columns in features.groups.items():
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise ValueError(f"connector: group {name!r} needs columns {missing}, which {url} does not have")
        kinds = {column_kind(schema.field(c), f"connector: group {name!r}") for c in columns}
        if name == features.label:
            if kinds - {"float", "int"}:
                raise ValueError(
                    f"connector: the label group {name!r} must hold numbers, got {sorted(kinds)}"
                )
            kind = "label"
        elif len(kinds) > 1:
            raise ValueError(f"connector: group {name!r} mixes {sorted(kinds)} columns {list(columns)}")
        else:
            kind = kinds.pop() if kinds else "float"
        length = longest_list(fs, units, list(columns)) if kind == "list" else 0
        groups.append(Group(name, tuple(columns), kind, length))
    return Layout(tuple(groups))


def longest_list(fs, units: list[Unit], columns: list[str]) -> int:
    """The longest list in `columns` over every file (reads those columns only)."""
    longest = 0
    for path in dict.fromkeys(u.path for u in units):
        with fs.open(path, "rb") as f:
            table = pq.read_table(f, columns=columns)
        for c in columns:
            lengths = pc.list_value_length(table.column(c))
            longest = max(longest, pc.max(lengths).as_py() or 0)
    return max(longest, 1)  # a group of empty lists still has a slot


def list_units(url: str) -> list[Unit]:
    """Every row group of the `*.parquet` files in the folder `url` (or of the one file `url`), in order."""
    fs, root = fsspec.core.url_to_fs(url)
    if fs.isfile(root):
        files = [root]
    else:
        files = sorted(
            p for p in fs.glob(f"{root.rstrip('/')}/*.parquet") if p.rsplit("/", 1)[-1][0] not in "._"
        )
    if not files:
        raise FileNotFoundError(f"connector: no parquet files in {url}")
    units = []
    for path in files:
        with fs.open(path, "rb") as f:
            meta = pq.read_metadata(f)
        units += [Unit(path, g, meta.row_group(g).num_rows) for g in range(meta.num_row_groups)]
    return units


def split_even(start: int, stop: int, parts: int, part: int) -> tuple[int, int]:
    """The `part`-th of `parts` contiguous, equal (to one row) pieces of [start, stop)."""
    n = stop - start
    return start + n * part // parts, start + n * (part + 1) // parts


def shard_ranges(
    rows: int,
    rank: int,
    world_size: int,
    workers: int,
    batch_size: int,
    shuffle: bool,
    drop_last: bool,
) -> list[list[tuple[int, int]]]:
    """For each worker of `rank`, the epoch rows (ranges over 0..rows-1) it reads, in the order it reads them.

    With `drop_last`, every rank gets rows // world_size rows and only full batches, so all ranks make
    the same number of steps (what torch.distributed needs); without it, every row is read exactly once.
    """
    if drop_last:
        per_rank = rows // world_size
        start, stop = rank * per_rank, (rank + 1) * per_rank
    else:
        start, stop = split_even(0, rows, world_size, rank)
    if shuffle:
        return [[split_even(start, stop, workers, k)] for k in range(workers)]
    n_batches = (stop - start) // batch_size if drop_last else -(-(stop - start) // batch_size)
    batches = [(start + j * batch_size, min(start + (j + 1) * batch_size, stop)) for j in range(n_batches)]
    return [batches[k::workers] for k in range(workers)]


def count_batches(ranges: list[tuple[int, int]], batch_size: int, shuffle: bool, drop_last: bool) -> int:
    """How many batches a worker yields for `ranges` (see `shard_ranges`)."""
    if not shuffle:
        return len(ranges)
    rows = sum(b - a for a, b in ranges)
    return rows // batch_size if drop_last else -(-rows // batch_size)


def to_arrays(table: pa.Table, layout: Layout, where: str) -> Arrays:
    """The arrays of each group (see `Features` for shapes), in `layout.keys` order, with no per-row Python."""
    n = table.num_rows
    out: list[np.ndarray] = []
    for group in layout.groups:
        for name in group.columns:
            column = table.column(name)
            if column.null_count and group.kind != "list":
                raise ValueError(
                    f"{where}: column {name!r} has {column.null_count} nulls; "
                    "the connector reads processed data (fill nulls in the RecDP pipeline)"
                )
        if group.kind == "list":
            ids = np.zeros((n, len(group.columns), group.length), np.int64)
            lengths = np.empty((n, len(group.columns)), np.int64)
            for j, name in enumerate(group.columns):
                lengths[:, j] = pad_lists(table.column(name), ids[:, j], f"{where}: column {name!r}")
            out += [ids, lengths]
            continue
        dtype = np.int64 if group.kind == "int" else np.float32
        array = np.empty((n, len(group.columns)), dtype)
        for j, name in enumerate(group.columns):
            array[:, j] = table.column(name).to_numpy()
        out.append(array[:, 0] if group.kind == "label" and len(group.columns) == 1 else array)
    return tuple(out)


def pad_lists(column: pa.ChunkedArray, out: np.ndarray, where: str) -> np.ndarray:
    """Write each row's list into `out` [n, L] from the left (the rest stays 0); return the lengths."""
    lists = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy().astype(np.int64)
    values = pc.list_flatten(lists)
    if values.null_count:
        raise ValueError(f"{where} has {values.null_count} null list elements; expected ids")
    if lengths.max(initial=0) > out.shape[1]:
        raise ValueError(f"{where} has a list of {lengths.max()} items; the batch holds {out.shape[1]}")
    rows = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    position = np.arange(len(rows)) - np.repeat(starts, lengths)
    out[rows, position] = values.to_numpy(zero_copy_only=False)
    return lengths


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def read_ahead(produce: Callable[[], Iterator[Any]], depth: int) -> Iterator[Any]:
    """Run `produce` in a thread, `depth` items ahead (Parquet decoding releases the GIL)."""
    if depth <= 0:
        yield from produce()
        return
    items: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def work() -> None:
        try:
            for item in produce():
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the consumer, raised there
            put(_Failed(error))

    thread = threading.Thread(target=work, daemon=True, name="connector-read-ahead")
    thread.start()
    try:
        while (item := items.get()) is not _DONE:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()  # the consumer stopped early: let the thread end


def in_order(chunks: Iterator[Arrays], batch_size: int, drop_last: bool) -> Iterator[Arrays]:
    """Cut consecutive chunks into batches of `batch_size` rows, without reordering."""
    carry: list[Arrays] = []
    carried = 0
    for chunk in chunks:
        n, at = len(chunk[0]), 0
        if carried:  # complete the batch begun by earlier chunks
            at = min(batch_size - carried, n)
            carry.append(tuple(a[:at] for a in chunk))
            carried += at
            if carried < batch_size:
                continue
            yield tuple(np.concatenate(parts) for parts in zip(*carry, strict=True))
            carry, carried = [], 0
        while n - at >= batch_size:
            yield tuple(a[at : at + batch_size] for a in chunk)
            at += batch_size
        if at < n:
            carry, carried = [tuple(a[at:] for a in chunk)], n - at
    if carried and not drop_last:
        yield tuple(np.concatenate(parts) for parts in zip(*carry, strict=True))


def shuffled(
    chunks: Iterator[Arrays], batch_size: int, buffer_rows: int, rng: np.random.Generator, drop_last: bool
) -> Iterator[Arrays]:
    """Batches drawn at random from a buffer of at least `buffer_rows` rows that chunks keep refilling."""
    buffer: list[np.ndarray] | None = None
    n = 0
    target = max(buffer_rows, batch_size)
    for chunk in chunks:
        m = len(chunk[0])
        if buffer is None:
            buffer = [np.empty((target + m, *a.shape[1:]), a.dtype) for a in chunk]
        elif n + m > len(buffer[0]):
            buffer = [np.concatenate([b[:n], np.empty((n + m, *b.shape[1:]), b.dtype)]) for b in buffer]
        for b, a in zip(buffer, chunk, strict=True):
            b[n : n + m] = a
        n += m
        while n >= target:
            pick = rng.choice(n, batch_size, replace=False)
            yield tuple(b[pick] for b in buffer)
            # fill the picked holes below the tail with the tail rows that were not picked
            tail = n - batch_size
            holes = pick[pick < tail]
            kept = np.ones(batch_size, bool)
            kept[pick[pick >= tail] - tail] = False
            for b in buffer:
                b[holes] = b[tail + np.flatnonzero(kept)]
            n = tail
    if n:
        order = rng.permutation(n)
        rest = [b[order] for b in buffer]
        yield from in_order(iter([tuple(rest)]), batch_size, drop_last)


class ParquetBatches(IterableDataset):
    """The batches of one rank, as a PyTorch IterableDataset (each DataLoader worker reads its own share).

    Set `epoch` before each pass: it reseeds the shuffles, so every epoch has its own order.
    """

    def __init__(
        self,
        url: str,
        features: Features,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        shuffle_buffer: int = 65536,
        read_ahead: int = 2,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(
                f"connector: rank {rank} is not in 0..{world_size - 1} (world_size={world_size})"
            )
        if batch_size < 1:
            raise ValueError(f"connector: batch_size must be at least 1, got {batch_size}")
        self.url, self.features, self.batch_size = url, features, batch_size
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.rank, self.world_size, self.workers = rank, world_size, max(num_workers, 1)
        self.shuffle_buffer, self.depth = shuffle_buffer, read_ahead
        self.units = list_units(url)
        self.rows = sum(u.rows for u in self.units)
        self.layout = layout(url, features, self.units)
        self.epoch = 0

    def plan(self) -> list[list[tuple[int, int]]]:
        return shard_ranges(
            self.rows, self.rank, self.world_size, self.workers, self.batch_size, self.shuffle, self.drop_last
        )

    def num_batches(self) -> int:
        """Batches this rank yields per epoch (all its workers together)."""
        return sum(count_batches(r, self.batch_size, self.shuffle, self.drop_last) for r in self.plan())

    def epoch_units(self) -> list[Unit]:
        if not self.shuffle:
            return self.units
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.units))
        return [self.units[i] for i in order]

    def _chunks(self, ranges: list[tuple[int, int]]) -> Iterator[Arrays]:
        """The rows of `ranges` (epoch row numbers) as arrays, one piece of a row group at a time."""
        units = self.epoch_units()
        starts = [0, *itertools.accumulate(u.rows for u in units)]
        fs, _ = fsspec.core.url_to_fs(self.url)
        local = isinstance(fs, LocalFileSystem)
        files: dict[str, pq.ParquetFile] = {}
        last: tuple[int, pa.Table] | None = None
        for a, b in ranges:
            i = bisect.bisect_right(starts, a) - 1
            while a < b:
                unit = units[i]
                if last is None or last[0] != i:  # consecutive ranges often share a row group
                    if unit.path not in files:
                        files[unit.path] = pq.ParquetFile(unit.path if local else fs.open(unit.path, "rb"))
                    last = (i, files[unit.path].read_row_group(unit.group, columns=self.features.columns))
                stop = min(b, starts[i + 1])
                piece = last[1].slice(a - starts[i], stop - a)
                yield to_arrays(piece, self.layout, f"{unit.path} (row group {unit.group})")
                a, i = stop, i + 1

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        ranges = self.plan()[worker]
        chunks = read_ahead(lambda: self._chunks(ranges), self.depth)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker])
            batches = shuffled(chunks, self.batch_size, self.shuffle_buffer, rng, self.drop_last)
        else:
            batches = in_order(chunks, self.batch_size, self.drop_last)
        keys = self.layout.keys
        for arrays in batches:
            yield {k: torch.from_numpy(a) for k, a in zip(keys, arrays, strict=True)}


class Loader:
    """Batches for one rank, reshuffled each pass; `len()` is the exact number of batches a pass yields."""

    def __init__(self, dataset: ParquetBatches, num_workers: int = 0, prefetch: int = 2, keep: Any = None):
        self.dataset, self.num_workers, self.prefetch = dataset, num_workers, prefetch
        self.keep = keep  # e.g. the cache entry, held (not evictable) while this loader lives
        self.epoch = 0

    def __len__(self) -> int:
        return self.dataset.num_batches()

    def __iter__(self) -> Iterator[Batch]:
        self.dataset.epoch = self.epoch
        self.epoch += 1
        if self.num_workers == 0:
            return iter(self.dataset)
        return iter(
            DataLoader(
                self.dataset,
                batch_size=None,
                num_workers=self.num_workers,
                prefetch_factor=max(self.prefetch, 1),
            )
        )


def default_rank() -> tuple[int, int]:
    """(rank, world size) of torch.distributed when it is initialised, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def make_loader(
    url: str,
    features: Features,
    batch_size: int,
    shuffle: bool = False,
    drop_last: bool = False,
    seed: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
    num_workers: int = 0,
    prefetch: int = 2,
    shuffle_buffer: int = 65536,
    keep: Any = None,
) -> Loader:
    """A loader over the parquet parts at `url` for this rank (torch.distributed's, unless given)."""
    if rank is None or world_size is None:
        rank, world_size = default_rank()
    dataset = ParquetBatches(
        url,
        features,
        batch_size,
        shuffle,
        drop_last,
        seed,
        rank,
        world_size,
        num_workers,
        shuffle_buffer,
        prefetch,
    )
    return Loader(dataset, num_workers, prefetch, keep)
