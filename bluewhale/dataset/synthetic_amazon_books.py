"""A planted Amazon Books: 5-core reviews and item meta written in the published formats.

Each user has a favourite category; each review's item comes from it with probability `LOYALTY`,
else from any category, and within a category by Zipf-like popularity. So the chance that a
(user, item) pair is the user's real review rather than a uniformly sampled negative is known.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bluewhale.atomic import publish_atomically
from bluewhale.dataset.amazon_books import AmazonBooks

GENERATOR_VERSION = 1
LOYALTY = 0.7
CATEGORIES = 20
START = 1_200_000_000  # 2008-01-10


class SyntheticAmazonBooks(AmazonBooks):
    """Writes `<dir>/rows<N>_seed<S>_<meta_format>_v<V>/{reviews_Books_5.json,meta_Books.json}` once.

    `meta_format` is `literal` (the older dumps' Python-literal lines) or `json`.
    """

    def __init__(self, rows: int, seed: int, dir: str, meta_format: str = "literal", bad_rows: str = "error"):
        if rows < 100:
            raise ValueError(f"dataset.rows must be at least 100, got {rows}")
        if meta_format not in ("literal", "json"):
            raise ValueError(f"dataset.meta_format must be 'literal' or 'json', got {meta_format!r}")
        self.folder = Path(dir) / f"rows{rows}_seed{seed}_{meta_format}_v{GENERATOR_VERSION}"
        super().__init__(path=str(self.folder), bad_rows=bad_rows)
        self.rows, self.seed, self.meta_format = rows, seed, meta_format

    def prepare(self) -> None:
        if not (self.folder / "planted.json").exists():
            with publish_atomically(self.folder) as tmp:
                write_planted_amazon_books(tmp, self.rows, self.seed, self.meta_format)

    def planted_pair_probability(self, users: list[str], items: list[str]) -> np.ndarray:
        """P(the pair is a real review | it is a real review or a uniform negative item, 1:1).

        The Bayes-optimal score for telling DIEN's positives from its sampled negatives.
        """
        self.prepare()
        planted = json.loads((self.folder / "planted.json").read_text())
        favourite = np.array([planted["favourite"][u] for u in users])
        category = np.array([planted["category"][i] for i in items])
        within = np.array([planted["within"][i] for i in items])  # P(item | its category)
        share = np.where(category == favourite, LOYALTY, 0) + (1 - LOYALTY) / CATEGORIES
        real = share * within
        return real / (real + 1.0 / len(planted["category"]))

    def planted_probability(self) -> None:
        """Every row is a positive review; use `planted_pair_probability` once negatives are sampled."""
        return None


def _asin(rng: np.random.Generator, n: int) -> list[str]:
    digits = rng.integers(0, 10**9, size=n)
    return [f"0{d:09d}" if k % 3 else f"B{d:09d}" for k, d in enumerate(digits)]


def write_planted_amazon_books(folder: Path, rows: int, seed: int, meta_format: str) -> None:
    """Write reviews (JSON lines, users' reviews in time order) and meta (literal or JSON lines)."""
    rng = np.random.default_rng(seed)
    items = max(rows // 5, 20)
    asins = list(dict.fromkeys(_asin(rng, items * 2)))[:items]
    item_category = rng.integers(0, CATEGORIES, size=items)
    popularity = 1.0 / rng.permutation(np.arange(1, items + 1)) ** 0.8
    within = np.empty(items)
    members = [np.flatnonzero(item_category == c) for c in range(CATEGORIES)]
    for m in members:
        within[m] = popularity[m] / popularity[m].sum()

    # 5-core: every user has at least five reviews
    counts = 5 + rng.geometric(0.15, size=rows // 5 + 1) - 1
    users_needed = int(np.searchsorted(np.cumsum(counts), rows)) + 1
    counts = counts[:users_needed]
    counts[-1] -= counts.sum() - rows
    if counts[-1] < 5 and len(counts) > 1:
        counts[-2] += counts[-1]
        counts = counts[:-1]
    users = np.array([f"A{n:013X}" for n in rng.integers(0, 16**13, size=len(counts))])
    favourite = rng.integers(0, CATEGORIES, size=len(counts))
    category_names = [f"Genre {c:02d}" for c in range(CATEGORIES)]

    user = np.repeat(np.arange(len(counts)), counts)
    loyal = rng.random(rows) < LOYALTY
    cats = np.where(loyal, favourite[user], rng.integers(0, CATEGORIES, size=rows))
    empty = np.array([len(m) == 0 for m in members])  # few items: a category may have none
    cats = np.where(empty[cats], favourite[user], cats)
    cats = np.where(empty[cats], int(np.argmin(empty)), cats)
    item = np.empty(rows, dtype=np.int64)
    for c in range(CATEGORIES):  # within a category, by popularity (inverse CDF of `within`)
        at = np.flatnonzero(cats == c)
        if at.size:
            cdf = np.cumsum(within[members[c]])
            item[at] = members[c][
                np.minimum(np.searchsorted(cdf, rng.random(at.size) * cdf[-1]), len(cdf) - 1)
            ]
    times = rng.integers(START, START + 6 * 365 * 86400, size=rows)
    times = times[np.lexsort((times, user))]  # each user's reviews in time order
    when = pd.to_datetime(times, unit="s")
    review_time = when.strftime("%m ") + when.day.astype(str) + when.strftime(", %Y")  # "09 13, 2009"
    named = rng.random(rows) > 0.05  # some reviews carry no reviewer name, as in the real dump
    helpful = rng.integers(0, 6, size=(rows, 2))
    stars = rng.integers(1, 6, size=rows)

    lines = []
    for n in range(rows):
        review = {"reviewerID": users[user[n]], "asin": asins[item[n]]}
        if named[n]:
            review["reviewerName"] = f'Reader "{user[n]}" é'
        review |= {
            "helpful": [int(min(helpful[n])), int(max(helpful[n]))],
            "reviewText": 'A line with\ttabs, "quotes" and ünïcode.',
            "overall": float(stars[n]),
            "summary": "Fine",
            "unixReviewTime": int(times[n]),
            "reviewTime": review_time[n],
        }
        lines.append(json.dumps(review))
    (folder / "reviews_Books_5.json").write_text("\n".join(lines) + "\n")

    meta_lines = []
    for k, asin in enumerate(asins):
        record: dict = {"asin": asin, "imUrl": f"http://ecx.images-amazon.com/images/I/{asin}.jpg"}
        if k % 7:  # some items have no sales rank, price or title, as in the real dump
            record |= {
                "salesRank": {"Books": int(rng.integers(1, 10**6))},
                "price": round(float(rng.uniform(1, 40)), 2),
            }
        if k % 11:
            record["title"] = f"Book {k} ('{asin}')"
        if k % 13:  # the last element of the last path is the item's category
            record["categories"] = [["Books"], ["Books", "Fiction", category_names[item_category[k]]]]
        record["related"] = {"also_bought": asins[max(k - 2, 0) : k]}
        meta_lines.append(repr(record) if meta_format == "literal" else json.dumps(record))
    (folder / "meta_Books.json").write_text("\n".join(meta_lines) + "\n")
    planted = {
        "favourite": {user: int(f) for user, f in zip(users, favourite, strict=True)},
        "category": {a: int(c) for a, c in zip(asins, item_category, strict=True)},
        "within": {a: float(w) for a, w in zip(asins, within, strict=True)},
        "version": GENERATOR_VERSION,
    }
    (folder / "planted.json").write_text(json.dumps(planted))
