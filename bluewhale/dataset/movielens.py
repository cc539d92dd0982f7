"""MovieLens ratings as published: ml-100k `u.data`, ml-1m `ratings.dat`, ml-25m `ratings.csv`.

Every variant reads into the same table: user_id, item_id (int64), rating (float32), timestamp
(int64 seconds since 1970, as RecDP's time ops take it), and label = rating >= `positive_rating` (the usual implicit-feedback view of ratings).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bluewhale.dataset.badrows import BadRows, check_mode, settle
from bluewhale.dataset.base import Dataset
from bluewhale.dataset.delimited import UNSIGNED, Check, read_delimited
from bluewhale.dataset.files import find_file, fingerprint_files, require_file, require_path

FIELDS = ["user_id", "item_id", "rating", "timestamp"]
_IDS = {
    "user_id": Check(UNSIGNED, "an integer user id"),
    "item_id": Check(UNSIGNED, "an integer item id"),
    "timestamp": Check(UNSIGNED, "integer seconds"),
}
_STARS = Check(r"^[1-5]$", "a whole rating 1-5")
_HALF_STARS = Check(r"^(0\.5|[1-4](\.0|\.5)?|5(\.0)?)$", "a rating 0.5-5 in steps of 0.5")
_SEPARATOR = Check(r"^$", "'::' between fields", required=False)

# variant -> (file name, delimiter, columns as Arrow splits them, header, checks)
VARIANTS = {
    "ml-100k": ("u.data", "\t", FIELDS, None, {**_IDS, "rating": _STARS}),
    # '::' is two one-character delimiters with an empty field between: Arrow's C parser still applies.
    # Half stars are accepted: ml-10m writes its ratings.dat the same way, with 0.5 steps.
    "ml-1m": (
        "ratings.dat",
        ":",
        ["user_id", "_1", "item_id", "_2", "rating", "_3", "timestamp"],
        None,
        {**_IDS, "rating": _HALF_STARS, "_1": _SEPARATOR, "_2": _SEPARATOR, "_3": _SEPARATOR},
    ),
    "ml-25m": (
        "ratings.csv",
        ",",
        FIELDS,
        ["userId", "movieId", "rating", "timestamp"],
        {**_IDS, "rating": _HALF_STARS},
    ),
}


# Items and their genres, beside the ratings: variant -> file name (latin-1 where MovieLens wrote it so).
ITEM_FILES = {"ml-100k": "u.item", "ml-1m": "movies.dat", "ml-25m": "movies.csv"}
GENRES_100K = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
NO_GENRES = "(no genres listed)"  # ml-25m's way of saying none


def read_items(path: Path, variant: str, bad_rows: str = "error") -> tuple[pa.Table, BadRows]:
    """The variant's item file as item_id, title, genres (a list) and genre (the first one, or null)."""
    if variant == "ml-100k":
        flags = [f"g{k}" for k in range(len(GENRES_100K))]
        columns = ["item_id", "title", "release_date", "video_release_date", "url", *flags]
        checks = {"item_id": _IDS["item_id"], **{f: Check(r"^[01]$", "a genre flag 0 or 1") for f in flags}}
        table, problems = read_delimited(path, columns, checks, "|", encoding="latin1")
        marks = np.stack([table.column(f).to_numpy(zero_copy_only=False) == "1" for f in flags], axis=1)
        genres = [np.array(GENRES_100K)[row].tolist() for row in marks.reshape(-1, len(flags))]
        ids, titles = pc.cast(table.column("item_id"), pa.int64()), table.column("title")
    else:
        ids, titles, genres, problems = _item_lines(path, variant)
        ids, titles = pa.array(ids, pa.int64()), pa.array(titles, pa.string())
    report = settle(path, problems, check_mode(bad_rows))
    genres = pa.array(genres, pa.list_(pa.string()))
    has_genre = pc.greater(pc.list_value_length(genres), 0)
    first = pc.list_element(pc.if_else(has_genre, genres, pa.scalar([None], genres.type)), 0)
    return pa.table({"item_id": ids, "title": titles, "genres": genres, "genre": first}), report


def _item_lines(
    path: Path, variant: str
) -> tuple[list[int], list[str], list[list[str]], list[tuple[int, str]]]:
    """movies.dat / movies.csv line by line: titles hold ':' (so '::' cannot be split by Arrow), and a
    stray quote in a CSV would make Arrow swallow the next line. Both files are small."""
    ids, titles, genres, problems = [], [], [], []
    dat = variant == "ml-1m"
    with open(path, encoding="latin1" if dat else "utf8", newline="") as f:
        for number, text in enumerate(f, start=1):
            text = text.rstrip("\r\n")
            if not dat and number == 1:
                if text != "movieId,title,genres":
                    problems.append((1, f"expected the header 'movieId,title,genres', got {text[:200]!r}"))
                    break
                continue
            try:
                parts = text.split("::") if dat else next(csv.reader([text], strict=True))
            except csv.Error as err:
                problems.append((number, f"expected 3 comma-separated fields, got unbalanced quotes ({err})"))
                continue
            if len(parts) != 3:
                joined = "fields joined by '::'" if dat else "comma-separated fields"
                problems.append((number, f"expected 3 {joined}, got {len(parts)}"))
            elif not re.match(UNSIGNED, parts[0]):
                problems.append((number, f"field item_id expected an integer item id, got {parts[0]!r}"))
            else:
                ids.append(int(parts[0]))
                titles.append(parts[1])
                genres.append([] if parts[2] in ("", NO_GENRES) else parts[2].split("|"))
    return ids, titles, genres, problems


def detect_variant(path: Path) -> str:
    """The variant a ratings file belongs to, from its published file name."""
    for variant, (name, *_) in VARIANTS.items():
        if path.name == name:
            return variant
    names = {v[0]: k for k, v in VARIANTS.items()}
    raise ValueError(
        f"dataset.path={path}: cannot tell the MovieLens variant from the file name; expected one of "
        f"{names} or set dataset.variant to one of {sorted(VARIANTS)}"
    )


def read_ratings(path: Path, variant: str, bad_rows: str = "error") -> tuple[pa.Table, BadRows]:
    """Read one MovieLens ratings file of `variant` into the common table (see the module docstring)."""
    _, delimiter, columns, header, checks = VARIANTS[variant]
    what = "':'-separated parts (4 fields joined by '::')" if variant == "ml-1m" else "fields"
    table, problems = read_delimited(path, columns, checks, delimiter, header, what)
    report = settle(path, problems, check_mode(bad_rows))
    return (
        pa.table(
            {
                "user_id": pc.cast(table.column("user_id"), pa.int64()),
                "item_id": pc.cast(table.column("item_id"), pa.int64()),
                "rating": pc.cast(table.column("rating"), pa.float32()),
                "timestamp": pc.cast(table.column("timestamp"), pa.int64()),
            }
        ),
        report,
    )


class MovieLens(Dataset):
    """MovieLens ratings (`dataset=movielens`): a user-item interaction log with a binary label."""

    label = "label"
    dense: list[str] = []
    sparse = ["user_id", "item_id"]
    user, item, timestamp = ["user_id"], ["item_id"], ["timestamp"]
    pipelines = ("movielens_seq",)

    def __init__(
        self,
        path: str | None,
        variant: str | None = None,
        positive_rating: float = 4.0,
        bad_rows: str = "error",
    ) -> None:
        path = require_path(path, "a MovieLens ratings file (u.data, ratings.dat, ratings.csv) or its folder")
        if variant is not None and variant not in VARIANTS:
            raise ValueError(f"dataset.variant must be one of {sorted(VARIANTS)} or null, got {variant!r}")
        names = [VARIANTS[v][0] for v in ([variant] if variant else VARIANTS)]
        self.path = find_file(path, names, "MovieLens ratings")  # ml-100k/ holds u.data, ml-1m/ ratings.dat
        self.variant = variant or detect_variant(self.path)
        self.positive_rating, self.bad_rows = positive_rating, check_mode(bad_rows)
        self._items: tuple[pa.Table, BadRows] | None = None

    @property
    def items_path(self) -> Path:
        """The variant's item file beside the ratings (optional: u.item, movies.dat, movies.csv)."""
        return self.path.parent / ITEM_FILES[self.variant]

    def prepare(self) -> None:
        """Make sure the input exists (a synthetic data set writes it here)."""
        require_file(self.path, "MovieLens ratings file")

    def fingerprint(self) -> dict:
        self.prepare()
        files = [self.path] + ([self.items_path] if self.items_path.is_file() else [])
        return fingerprint_files(files) | {"variant": self.variant}

    def read(self) -> tuple[pa.Table, BadRows]:
        """The ratings in file order, with label = rating >= positive_rating.

        The item file, where present, is checked here too, so its bad rows are counted with the rest.
        """
        self.prepare()
        table, report = read_ratings(self.path, self.variant, self.bad_rows)
        label = pc.cast(pc.greater_equal(table.column("rating"), self.positive_rating), pa.int8())
        return table.append_column(self.label, label), report + self._read_items()[1]

    def side_tables(self) -> dict[str, pa.Table]:
        """`items` (item_id, title, genres, genre) where the variant's item file is beside the ratings."""
        self.prepare()
        return {"items": self._read_items()[0]} if self.items_path.is_file() else {}

    def _read_items(self) -> tuple[pa.Table | None, BadRows]:
        if self._items is None:
            found = self.items_path.is_file()
            self._items = (
                read_items(self.items_path, self.variant, self.bad_rows) if found else (None, BadRows())
            )
        return self._items
