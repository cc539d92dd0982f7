"""Amazon Books reviews and item metadata, as DIEN uses them.

Reviews (`reviews_Books_5.json`): one JSON object a line. Meta (`meta_Books.json`): one record a line,
strict JSON or, in older dumps, a Python literal; an item's category is the last element of its last
category path. `read()` gives the reviews with the item's category joined on; `side_tables()["meta"]`
is the metadata itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bluewhale.dataset.badrows import BadRows, check_mode, settle
from bluewhale.dataset.base import Dataset
from bluewhale.dataset.files import find_folder, fingerprint_files, require_file, require_path
from bluewhale.dataset.jsonlines import field, last_item, read_json_lines

REVIEWS_SCHEMA = pa.schema(
    [
        ("reviewerID", pa.string()),
        ("asin", pa.string()),
        ("overall", pa.float32()),
        ("unixReviewTime", pa.int64()),
    ]
)
META_SCHEMA = pa.schema(
    [
        ("asin", pa.string()),
        ("title", pa.string()),
        ("price", pa.float64()),
        ("categories", pa.list_(pa.list_(pa.string()))),
    ]
)
_NUMBER = (int, float)


def _review(obj: object) -> list:
    return [
        field(obj, "reviewerID", (str,), "a reviewer id string"),
        field(obj, "asin", (str,), "an asin string"),
        field(obj, "overall", _NUMBER, "a rating number"),
        field(obj, "unixReviewTime", (int,), "integer seconds"),
    ]


def _meta(obj: object) -> list:
    categories = field(obj, "categories", (list,), "a list of category paths", required=False)
    if categories is not None and not all(
        isinstance(p, list) and all(isinstance(c, str) for c in p) for p in categories
    ):
        raise ValueError(f"field categories expected lists of strings, got {categories!r:.60}")
    return [
        field(obj, "asin", (str,), "an asin string"),
        field(obj, "title", (str,), "a title string", required=False),
        field(obj, "price", _NUMBER, "a price number", required=False),
        categories,
    ]


def read_reviews(path: Path, bad_rows: str = "error") -> tuple[pa.Table, BadRows]:
    """Reviews in file order: reviewerID, asin, overall (float32), unixReviewTime (int64 seconds)."""
    table, problems = read_json_lines(
        path, REVIEWS_SCHEMA, ["reviewerID", "asin", "overall", "unixReviewTime"], _review
    )
    return table, settle(path, problems, check_mode(bad_rows))


def read_meta(path: Path, bad_rows: str = "error") -> tuple[pa.Table, BadRows]:
    """Item metadata: asin, title, price, category (the last element of the last category path).

    An asin listed twice is a bad row (the later line), since a join would double its reviews.
    """
    table, problems = read_json_lines(path, META_SCHEMA, ["asin"], _meta, literals=True, lists=["categories"])
    if table.num_rows:
        lines = _kept_lines(table.num_rows, problems)
        asin = table.column("asin").to_pandas()
        repeated = asin.duplicated(keep="first").to_numpy()
        problems += [
            (int(lines[r]), f"asin {asin[r]!r} already listed above") for r in np.flatnonzero(repeated)
        ]
        table = table.filter(pa.array(~repeated))
    report = settle(path, problems, check_mode(bad_rows))
    category = last_item(last_item(table.column("categories")))
    return table.drop_columns(["categories"]).append_column("category", category), report


def _kept_lines(kept: int, problems: list[tuple[int, str]]) -> np.ndarray:
    """The file line of each kept row, given the lines that were refused."""
    refused = np.array(sorted(n for n, _ in problems), dtype=np.int64)
    lines = np.setdiff1d(np.arange(1, kept + len(refused) + 1), refused)
    return lines[:kept]


class AmazonBooks(Dataset):
    """Amazon Books reviews + meta (`dataset=amazon_books`): implicit feedback for DIEN.

    Every review is a positive example (`label` is 1 on every row); negatives are made by the
    pipeline's negative sampling. `path` is the folder holding both files.
    """

    label = "label"
    dense: list[str] = []
    sparse = ["reviewerID", "asin", "category"]
    user, item, timestamp = ["reviewerID"], ["asin", "category"], ["unixReviewTime"]
    pipelines = ("amazon_dien",)

    def __init__(
        self,
        path: str | None,
        reviews: str = "reviews_Books_5.json",
        meta: str = "meta_Books.json",
        bad_rows: str = "error",
    ) -> None:
        folder = require_path(path, "the folder holding reviews_Books_5.json and meta_Books.json")
        folder = find_folder(folder, reviews)  # or one of its files
        self.reviews_path, self.meta_path = folder / reviews, folder / meta
        self.bad_rows = check_mode(bad_rows)
        self._meta: tuple[pa.Table, BadRows] | None = None

    def prepare(self) -> None:
        """Make sure the input exists (a synthetic data set writes it here)."""
        require_file(self.reviews_path, "reviews file (dataset.reviews)")
        require_file(self.meta_path, "meta file (dataset.meta)")

    def fingerprint(self) -> dict:
        self.prepare()
        return fingerprint_files([self.reviews_path, self.meta_path])

    def read(self) -> tuple[pa.Table, BadRows]:
        """The reviews in file order, with each item's category (null when meta has none) and label 1."""
        self.prepare()
        reviews, bad = read_reviews(self.reviews_path, self.bad_rows)
        meta, meta_bad = self._read_meta()
        where = pc.index_in(reviews.column("asin"), value_set=meta.column("asin").combine_chunks())
        reviews = reviews.append_column("category", meta.column("category").take(where))
        reviews = reviews.append_column(self.label, pa.array(np.ones(reviews.num_rows, np.int8)))
        return reviews, bad + meta_bad

    def side_tables(self) -> dict[str, pa.Table]:
        """`meta`: asin, title, price, category, one row per item."""
        self.prepare()
        return {"meta": self._read_meta()[0]}

    def _read_meta(self) -> tuple[pa.Table, BadRows]:
        if self._meta is None:
            self._meta = read_meta(self.meta_path, self.bad_rows)
        return self._meta
