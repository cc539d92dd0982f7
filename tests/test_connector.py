"""The connector's reader: every row exactly once per epoch across ranks and workers, rows kept whole,
seeded shuffles, drop-last, file order when scoring, and fsspec URLs."""

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from bluewhale.connector import Features, make_loader
from bluewhale.connector.reader import shard_ranges

FEATURES = Features({"label": ("label",), "dense": ("I1", "I2"), "sparse": ("C1", "C2", "C3")})
ROWS = 1000


def planted(ids: np.ndarray) -> pa.Table:
    """Every column is a function of the row id, so a batch row can be traced back and checked whole."""
    return pa.table(
        {
            "label": (ids % 2).astype(np.int64),
            "I1": ids.astype(np.float32),
            "I2": (ids / 2).astype(np.float32),
            "C1": ids.astype(np.int32),
            "C2": (ids * 3).astype(np.int64),
            "C3": (ids % 7).astype(np.int32),
            "unused": np.zeros(len(ids)),
        }
    )


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Three files with uneven row groups (and one file of a single group), as a converter might leave."""
    folder = tmp_path_factory.mktemp("parts")
    ids = np.arange(ROWS)
    for i, (start, stop, group) in enumerate([(0, 450, 100), (450, 520, 1000), (520, ROWS, 64)]):
        pq.write_table(planted(ids[start:stop]), folder / f"part-{i:05d}.parquet", row_group_size=group)
    (folder / "_SUCCESS").write_text("")  # not parquet: ignored
    return folder


def ids_of(batches) -> list[int]:
    """The row ids of a pass, after checking that every row's columns belong together."""
    ids = []
    for batch in batches:
        dense, sparse, label = batch["dense"], batch["sparse"], batch["label"]
        assert dense.dtype == torch.float32 and sparse.dtype == torch.int64 and label.dtype == torch.float32
        assert dense.shape == (len(label), 2) and sparse.shape == (len(label), 3)
        row = sparse[:, 0]
        assert torch.equal(dense[:, 0].long(), row) and torch.equal(dense[:, 1], row.float() / 2)
        assert torch.equal(sparse[:, 1], row * 3) and torch.equal(sparse[:, 2], row % 7)
        assert torch.equal(label, (row % 2).float())
        ids += row.tolist()
    return ids


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("workers", [0, 1, 2])
@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_every_row_is_read_exactly_once_across_ranks_and_workers(parts, world_size, workers, shuffle):
    seen = Counter()
    for rank in range(world_size):
        loader = make_loader(
            str(parts),
            FEATURES,
            32,
            shuffle=shuffle,
            seed=5,
            rank=rank,
            world_size=world_size,
            num_workers=workers,
        )
        ids = ids_of(loader)
        assert (
            len(loader) == -(-len(ids) // 32) or workers > 1
        )  # workers each end with their own partial batch
        assert abs(len(ids) - ROWS / world_size) < 1  # ranks are balanced to a row
        seen.update(ids)
    assert sorted(seen) == list(range(ROWS)) and set(seen.values()) == {1}


@pytest.mark.parametrize("workers", [0, 2])
def test_len_is_the_number_of_batches_a_pass_yields(parts, workers):
    for shuffle in (True, False):
        for drop_last in (True, False):
            loader = make_loader(
                str(parts), FEATURES, 48, shuffle, drop_last, rank=1, world_size=3, num_workers=workers
            )
            assert len(list(loader)) == len(loader)


def test_scoring_order_is_file_order_even_with_workers(parts):
    for workers in (0, 2):
        loader = make_loader(str(parts), FEATURES, 48, shuffle=False, num_workers=workers)
        batches = list(loader)
        assert ids_of(batches) == list(range(ROWS))
        assert [len(b["label"]) for b in batches] == [48] * (ROWS // 48) + [ROWS % 48]


def test_shuffle_is_seeded_and_differs_between_epochs(parts):
    def passes(seed, n=2):
        loader = make_loader(
            str(parts), FEATURES, 50, shuffle=True, seed=seed, num_workers=0, shuffle_buffer=200
        )
        return [ids_of(loader) for _ in range(n)]

    first, second = passes(seed=1)
    assert first == passes(seed=1)[0]  # the same seed, the same order
    assert first != second and sorted(first) == sorted(second)  # each epoch its own order
    assert first != passes(seed=2)[0]
    # mixed, not just row groups reordered: neighbours in the file rarely stay neighbours
    steps = np.abs(np.diff(first))
    assert np.mean(steps == 1) < 0.1
    # and the bounded buffer mixes across row groups of the whole shard
    assert np.corrcoef(np.arange(ROWS), first)[0, 1] < 0.9


def test_drop_last_gives_full_batches_and_the_same_steps_on_every_rank(parts):
    for workers in (0, 2):
        steps, seen = [], Counter()
        for rank in range(3):
            loader = make_loader(
                str(parts),
                FEATURES,
                40,
                shuffle=True,
                drop_last=True,
                rank=rank,
                world_size=3,
                num_workers=workers,
            )
            batches = list(loader)
            assert all(len(b["label"]) == 40 for b in batches)
            steps.append(len(batches))
            seen.update(ids_of(batches))
        assert len(set(steps)) == 1  # torch.distributed ranks must make the same number of steps
        assert set(seen.values()) == {1}  # nothing read twice
        assert ROWS - sum(seen.values()) < 3 * max(workers, 1) * 40  # only remainders dropped


def test_a_file_url_reads_the_same_rows(parts):
    local = ids_of(make_loader(str(parts), FEATURES, 64))
    url = ids_of(make_loader(parts.as_uri(), FEATURES, 64, num_workers=1))
    assert parts.as_uri().startswith("file://")
    assert url == local == list(range(ROWS))


def test_shards_cover_the_rows_once_for_any_shape():
    for rows in (0, 1, 7, 100, 101):
        for world in (1, 2, 3, 4):
            for workers in (1, 2, 3):
                for batch in (1, 5, 64):
                    for shuffle in (True, False):
                        got = [
                            r
                            for rank in range(world)
                            for w in shard_ranges(rows, rank, world, workers, batch, shuffle, False)
                            for a, b in w
                            for r in range(a, b)
                        ]
                        assert sorted(got) == list(range(rows))


def test_nulls_are_reported_with_file_and_column(tmp_path):
    table = planted(np.arange(10)).set_column(4, "C2", pa.array([1, None] * 5, pa.int64()))
    pq.write_table(table, tmp_path / "part-0.parquet")
    with pytest.raises(ValueError, match=r"part-0.parquet \(row group 0\): column 'C2' has 5 nulls"):
        list(make_loader(str(tmp_path), FEATURES, 10))
    with pytest.raises(FileNotFoundError, match="no parquet files"):
        make_loader(str(tmp_path / "missing"), FEATURES, 4)


def test_list_columns_come_padded_with_their_lengths_and_other_groups_as_asked(tmp_path):
    """Histories: lists of ids padded on the right to the longest list, lengths beside them; several
    label columns make a [B, T] label; a column may serve two groups."""
    table = pa.table(
        {
            "y1": [1, 0, 1],
            "y2": [0.0, 1.0, 0.0],
            "item": [7, 8, 9],
            "hist_item": pa.array([[1, 2], [], None], pa.list_(pa.int32())),
            "hist_cat": pa.array([[3, 4], [], [5]], pa.list_(pa.int64())),
        }
    )
    pq.write_table(table, tmp_path / "part-0.parquet")
    groups = {
        "label": ("y1", "y2"),
        "item": ("item",),
        "history": ("hist_item", "hist_cat"),
        "also": ("item",),
    }
    [batch] = list(make_loader(str(tmp_path), Features(groups), 8))
    assert set(batch) == {"label", "item", "history", "history_lengths", "also"}
    assert batch["label"].tolist() == [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
    assert batch["item"].dtype == torch.int64 and batch["item"].tolist() == [[7], [8], [9]]
    assert torch.equal(batch["also"], batch["item"])
    assert batch["history"].shape == (3, 2, 2)  # rows, columns, the longest list
    assert batch["history"].tolist() == [[[1, 2], [3, 4]], [[0, 0], [0, 0]], [[0, 0], [5, 0]]]
    assert batch["history_lengths"].tolist() == [[2, 2], [0, 0], [0, 1]]  # a null list is empty


def test_a_text_column_or_a_mixed_group_is_refused_naming_it(tmp_path):
    pq.write_table(pa.table({"label": [1], "name": ["x"], "f": [0.5], "i": [1]}), tmp_path / "p.parquet")
    with pytest.raises(ValueError, match="'name' holds string.*categorify"):
        make_loader(str(tmp_path), Features({"label": ("label",), "text": ("name",)}), 8)
    with pytest.raises(ValueError, match="group 'mixed' mixes"):
        make_loader(str(tmp_path), Features({"label": ("label",), "mixed": ("f", "i")}), 8)
    with pytest.raises(ValueError, match=r"group 'x' needs columns \['nope'\]"):
        make_loader(str(tmp_path), Features({"label": ("label",), "x": ("nope",)}), 8)
