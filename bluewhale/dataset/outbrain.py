"""Outbrain Click Prediction: the published CSVs joined into one Wide & Deep table.

`read()` gives `clicks_train.csv` in file order, each row joined with its display's event (user,
document, time, platform, geo), its ad's promoted content, and both documents' meta. Event times are
published as milliseconds minus `TIME_OFFSET_MS`; the table holds absolute times as int64 (`timestamp`
in milliseconds since 1970, `publish_time` in seconds, as RecDP's time ops take them). Topics, categories
and entities are `side_tables()`, to join or aggregate in the pipeline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bluewhale.dataset.badrows import BadRows, check_mode, settle
from bluewhale.dataset.base import Dataset
from bluewhale.dataset.delimited import NUMBER, UNSIGNED, Check, read_delimited, row_to_line
from bluewhale.dataset.files import find_folder, fingerprint_files, require_file, require_path

log = logging.getLogger(__name__)

TIME_OFFSET_MS = 1465876799998
_ID = Check(UNSIGNED, "an integer id")
_OPTIONAL_ID = Check(UNSIGNED, "an integer id or nothing", required=False)
_CONFIDENCE = Check(NUMBER, "a confidence number")


@dataclass(frozen=True)
class CsvFile:
    """One published CSV: its columns (the header), field checks, types, and the key that must be unique."""

    name: str
    columns: list[str]
    checks: dict[str, Check]
    types: dict[str, pa.DataType]
    key: str | None = None


FILES = {
    "clicks": CsvFile(
        "clicks_train.csv",
        ["display_id", "ad_id", "clicked"],
        {"display_id": _ID, "ad_id": _ID, "clicked": Check(r"^[01]$", "0 or 1")},
        {"display_id": pa.int64(), "ad_id": pa.int64(), "clicked": pa.int8()},
    ),
    "events": CsvFile(
        "events.csv",
        ["display_id", "uuid", "document_id", "timestamp", "platform", "geo_location"],
        {
            "display_id": _ID,
            "uuid": Check(r"^[0-9a-f]+$", "a hex user id"),
            "document_id": _ID,
            "timestamp": Check(UNSIGNED, "milliseconds since the data set's start"),
            # the published file writes a few unknown platforms as \N
            "platform": Check(r"^([123]|\\N)$", "1, 2, 3 or \\N", required=False),
        },
        {"display_id": pa.int64(), "document_id": pa.int64(), "timestamp": pa.int64()},
        key="display_id",
    ),
    "promoted": CsvFile(
        "promoted_content.csv",
        ["ad_id", "document_id", "campaign_id", "advertiser_id"],
        {"ad_id": _ID, "document_id": _ID, "campaign_id": _ID, "advertiser_id": _ID},
        {c: pa.int64() for c in ["ad_id", "document_id", "campaign_id", "advertiser_id"]},
        key="ad_id",
    ),
    "documents_meta": CsvFile(
        "documents_meta.csv",
        ["document_id", "source_id", "publisher_id", "publish_time"],
        {
            "document_id": _ID,
            "source_id": _OPTIONAL_ID,
            "publisher_id": _OPTIONAL_ID,
            "publish_time": Check(
                r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$",
                "YYYY-MM-DD HH:MM:SS or nothing",
                False,
            ),
        },
        {c: pa.int64() for c in ["document_id", "source_id", "publisher_id"]},
        key="document_id",
    ),
}
SIDE_FILES = {
    name: CsvFile(
        f"documents_{name}.csv",
        ["document_id", id_column, "confidence_level"],
        {"document_id": _ID, id_column: check, "confidence_level": _CONFIDENCE},
        {"document_id": pa.int64(), "confidence_level": pa.float32()}
        | ({} if name == "entities" else {id_column: pa.int64()}),
    )
    for name, id_column, check in [
        ("topics", "topic_id", _ID),
        ("categories", "category_id", _ID),
        ("entities", "entity_id", Check(r"^[0-9a-f]+$", "a hex entity id")),
    ]
}


def read_csv(path: Path, spec: CsvFile, bad_rows: str) -> tuple[pa.Table, BadRows]:
    """One Outbrain CSV with its header checked, fields typed, and (if it has one) its key unique."""
    table, problems = read_delimited(path, spec.columns, spec.checks, ",", header=spec.columns)
    if spec.key and table.num_rows:
        keys = table.column(spec.key).to_pandas()
        repeated = keys.duplicated(keep="first").to_numpy()
        if repeated.any():
            refused = np.array(sorted(n for n, _ in problems), dtype=np.int64) - 1  # lines after the header
            lines = row_to_line(np.flatnonzero(repeated), refused) + 1
            problems += [
                (int(n), f"{spec.key} {keys.iloc[r]} already listed above")
                for r, n in zip(np.flatnonzero(repeated), lines, strict=True)
            ]
            table = table.filter(pa.array(~repeated))
    report = settle(path, problems, bad_rows)
    for name, type in spec.types.items():
        table = table.set_column(table.column_names.index(name), name, pc.cast(table.column(name), type))
    return table, report


def lookup(keys: pa.ChunkedArray, table: pa.Table, key: str, columns: dict[str, str]) -> dict[str, pa.Array]:
    """For each of `keys` (order kept), `table`'s `columns` on the row whose `key` matches (null if none)."""
    where = pc.index_in(keys, value_set=table.column(key).combine_chunks())
    missing = pc.sum(pc.is_null(where)).as_py() or 0
    if missing:
        log.warning("%d rows have a %s with no row in its table: their joined fields are null", missing, key)
    return {new: table.column(old).take(where) for old, new in columns.items()}


def split_geo(geo: pa.ChunkedArray) -> dict[str, pa.Array]:
    """`country>state>dma` into three columns; missing parts are null (`SG>00` has no dma)."""
    parts = pc.split_pattern(pc.binary_join_element_wise(geo, ">>", ""), ">")
    return {
        name: pc.if_else(pc.equal(part := pc.list_element(parts, k), ""), None, part)
        for k, name in enumerate(["geo_country", "geo_state", "geo_dma"])
    }


class Outbrain(Dataset):
    """Outbrain Click Prediction (`dataset=outbrain`): one row per (display, ad), `clicked` the label.

    `path` is the folder of the published CSVs. Joins never drop a click: a key missing from its table
    leaves the joined fields null (and is logged).
    """

    label = "clicked"
    dense: list[str] = []
    sparse = [
        "ad_id",
        "document_id",
        "platform",
        "geo_country",
        "geo_state",
        "geo_dma",
        "ad_document_id",
        "campaign_id",
        "advertiser_id",
        "source_id",
        "publisher_id",
        "ad_source_id",
        "ad_publisher_id",
    ]
    user, item, group = ["uuid"], ["ad_id"], ["display_id"]  # group: the ads of one display are ranked
    timestamp = ["timestamp"]  # the event's, in ms
    published = ["publish_time", "ad_publish_time"]  # the page's and the ad's documents, in seconds
    pipelines = ("outbrain_wnd",)

    def __init__(self, path: str | None, bad_rows: str = "error") -> None:
        path = require_path(path, "the folder of the Outbrain CSVs (clicks_train.csv, events.csv, …)")
        self.folder = find_folder(path, "clicks_train.csv")  # or a file in it
        self.bad_rows = check_mode(bad_rows)
        self._sides: tuple[dict[str, pa.Table], BadRows] | None = None

    def files(self) -> list[Path]:
        """The input files: the four joined CSVs, then the side-table CSVs that are present."""
        return [self.folder / f.name for f in FILES.values()] + [
            self.folder / f.name for f in SIDE_FILES.values() if (self.folder / f.name).is_file()
        ]

    def prepare(self) -> None:
        """Make sure the input exists (a synthetic data set writes it here)."""
        for spec in FILES.values():
            require_file(self.folder / spec.name, f"Outbrain {spec.name}")

    def fingerprint(self) -> dict:
        self.prepare()
        return fingerprint_files(self.files())

    def read(self) -> tuple[pa.Table, BadRows]:
        """The Wide & Deep table, in clicks_train.csv order."""
        self.prepare()
        tables, report = {}, BadRows()
        for name, spec in FILES.items():
            tables[name], bad = read_csv(self.folder / spec.name, spec, self.bad_rows)
            report += bad
        clicks, events, meta = tables["clicks"], tables["events"], tables["documents_meta"]
        columns = {c: clicks.column(c) for c in clicks.column_names}
        columns |= lookup(
            clicks.column("display_id"),
            events,
            "display_id",
            {c: c for c in ["uuid", "document_id", "timestamp", "platform", "geo_location"]},
        )
        absolute = pc.add(columns["timestamp"], TIME_OFFSET_MS)
        columns["timestamp"] = absolute
        unknown = pc.equal(columns["platform"], "\\N")
        columns["platform"] = pc.cast(pc.if_else(unknown, None, columns["platform"]), pa.int8())
        columns |= split_geo(columns["geo_location"])
        columns |= lookup(
            clicks.column("ad_id"),
            tables["promoted"],
            "ad_id",
            {"document_id": "ad_document_id", "campaign_id": "campaign_id", "advertiser_id": "advertiser_id"},
        )
        for prefix, document in [("", "document_id"), ("ad_", "ad_document_id")]:
            doc_columns = {c: prefix + c for c in ["source_id", "publisher_id", "publish_time"]}
            columns |= lookup(columns[document], meta, "document_id", doc_columns)
            time = prefix + "publish_time"
            parsed = pc.strptime(columns[time], "%Y-%m-%d %H:%M:%S", "s")
            columns[time] = pc.cast(parsed, pa.int64())
        # the side tables are checked here too, so their bad rows are counted with the rest
        return pa.table(columns), report + self._side_tables()[1]

    def side_tables(self) -> dict[str, pa.Table]:
        """`topics`, `categories`, `entities` (document_id, id, confidence_level), those present."""
        self.prepare()
        return self._side_tables()[0]

    def _side_tables(self) -> tuple[dict[str, pa.Table], BadRows]:
        if self._sides is None:
            tables, report = {}, BadRows()
            for name, spec in SIDE_FILES.items():
                path = self.folder / spec.name
                if path.is_file():
                    tables[name], bad = read_csv(path, spec, self.bad_rows)
                    report += bad
            self._sides = tables, report
        return self._sides
