"""Twitter RecSys Challenge 2021: one engagement a line, 24 fields separated by the byte `\\x01`.

List fields (tokens, hashtags, media, links, domains) hold items separated by tabs. The last four
fields are the engagement timestamps; a task's label is 1 when its timestamp is present. Times are
int64 seconds since 1970, as published (and as RecDP's time ops take them).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from bluewhale.dataset.badrows import BadRows, check_mode, settle
from bluewhale.dataset.base import Dataset
from bluewhale.dataset.delimited import UNSIGNED, Check, read_delimited
from bluewhale.dataset.files import fingerprint_files, require_nonempty, require_path

SEPARATOR = "\x01"
TARGETS = ["reply_timestamp", "retweet_timestamp", "retweet_with_comment_timestamp", "like_timestamp"]
TASKS = ["reply", "retweet", "quote", "like"]  # label columns, one per target, same order
LISTS = ["text_tokens", "hashtags", "present_media", "present_links", "present_domains"]
FIELDS = [
    "text_tokens",
    "hashtags",
    "tweet_id",
    "present_media",
    "present_links",
    "present_domains",
    "tweet_type",
    "language",
    "tweet_timestamp",
    "engaged_with_user_id",
    "engaged_with_user_follower_count",
    "engaged_with_user_following_count",
    "engaged_with_user_is_verified",
    "engaged_with_user_account_creation",
    "engaging_user_id",
    "engaging_user_follower_count",
    "engaging_user_following_count",
    "engaging_user_is_verified",
    "engaging_user_account_creation",
    "engagee_follows_engager",
    *TARGETS,
]
COUNTS = [
    "engaged_with_user_follower_count",
    "engaged_with_user_following_count",
    "engaging_user_follower_count",
    "engaging_user_following_count",
]
FLAGS = ["engaged_with_user_is_verified", "engaging_user_is_verified", "engagee_follows_engager"]
TIMES = ["tweet_timestamp", "engaged_with_user_account_creation", "engaging_user_account_creation"]
IDS = ["tweet_id", "engaged_with_user_id", "engaging_user_id", "language"]
TWEET_TYPES = ["TopLevel", "Retweet", "Quote", "Reply"]

_ID = r"^[0-9A-Za-z]+$"
_ID_LIST = r"^[0-9A-Za-z]+(\t[0-9A-Za-z]+)*$"
CHECKS: dict[str, Check] = {
    "text_tokens": Check(r"^[0-9]+(\t[0-9]+)*$", "tab-separated token ids"),
    "hashtags": Check(_ID_LIST, "tab-separated ids or nothing", required=False),
    "present_media": Check(r"^(Photo|Video|GIF)(\t(Photo|Video|GIF))*$", "Photo/Video/GIF items", False),
    "present_links": Check(_ID_LIST, "tab-separated ids or nothing", required=False),
    "present_domains": Check(_ID_LIST, "tab-separated ids or nothing", required=False),
    "tweet_type": Check("^(" + "|".join(TWEET_TYPES) + ")$", f"one of {TWEET_TYPES}"),
    **{c: Check(_ID, "an id") for c in IDS},
    **{c: Check(UNSIGNED, "a count") for c in COUNTS},
    **{c: Check(r"^(true|false)$", "true or false") for c in FLAGS},
    **{c: Check(UNSIGNED, "integer seconds") for c in TIMES},
    **{c: Check(UNSIGNED, "integer seconds or nothing", required=False) for c in TARGETS},
}


def read_twitter_file(path: Path, bad_rows: str = "error") -> tuple[pa.Table, BadRows]:
    """Read one RecSys 2021 file into typed columns plus the four int8 task labels."""
    table, problems = read_delimited(path, FIELDS, CHECKS, SEPARATOR, what="\\x01-separated fields")
    report = settle(path, problems, check_mode(bad_rows))
    columns: dict[str, pa.ChunkedArray] = {}
    for name in FIELDS:
        col = table.column(name)
        if name in LISTS:
            items = pc.split_pattern(pc.fill_null(col, ""), "\t")
            # an empty field is an empty list, not a list holding one empty string
            items = pc.if_else(pc.is_null(col), pa.scalar([], pa.list_(pa.string())), items)
            columns[name] = pc.cast(items, pa.list_(pa.int32())) if name == "text_tokens" else items
        elif name in COUNTS:
            columns[name] = pc.cast(col, pa.int64())
        elif name in FLAGS:
            columns[name] = pc.equal(col, "true")
        elif name in TIMES or name in TARGETS:
            columns[name] = pc.cast(col, pa.int64())
        else:
            columns[name] = col
    for task, target in zip(TASKS, TARGETS, strict=True):
        columns[task] = pc.cast(pc.is_valid(columns[target]), pa.int8())
    return pa.table(columns), report


def input_files(path: Path) -> list[Path]:
    """A single file, or every part file of a folder (hidden and `_SUCCESS`-style files left out)."""
    if path.is_file():
        return [require_nonempty(path, "RecSys 2021 file")]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
        if files:
            return [require_nonempty(p, "RecSys 2021 part file") for p in files]
    raise FileNotFoundError(f"dataset.path={path}: expected a RecSys 2021 file or a folder of part files")


class TwitterRecSys2021(Dataset):
    """Twitter RecSys 2021 engagements (`dataset=twitter_recsys2021`): four binary tasks per row.

    `label` is the like task (the densest); `labels` names all four, in the order reply, retweet,
    quote, like.
    """

    label, labels = "like", TASKS
    dense = COUNTS
    sparse = ["tweet_type", "language", *FLAGS]
    sequence = LISTS
    user, item = ["engaging_user_id", "engaged_with_user_id"], ["tweet_id"]
    timestamp = TIMES
    pipelines = ("twitter_recsys",)

    def __init__(self, path: str | None, bad_rows: str = "error") -> None:
        self.path = require_path(path, "a RecSys 2021 file (\\x01-separated) or a folder of part files")
        self.bad_rows = check_mode(bad_rows)

    def prepare(self) -> None:
        """Make sure the input exists (a synthetic data set writes it here)."""
        input_files(self.path)

    def fingerprint(self) -> dict:
        self.prepare()
        return fingerprint_files(input_files(self.path))

    def read(self) -> tuple[pa.Table, BadRows]:
        self.prepare()
        tables, report = [], BadRows()
        for path in input_files(self.path):
            table, bad = read_twitter_file(path, self.bad_rows)
            tables.append(table)
            report += bad
        return pa.concat_tables(tables), report
