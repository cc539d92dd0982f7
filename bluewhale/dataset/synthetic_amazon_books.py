"""A planted Amazon Books: 5-core reviews and item meta written in the published formats.

Users' interests drift: each user's current interest is a category that follows a Markov chain along
their own reviews in time order. It starts uniform over the categories; before each later review it
jumps with probability `SWITCH` to one of the other categories (uniformly). A review's category is the
current interest with probability `LOYALTY`, else uniform over all categories; its item is drawn within
the category by Zipf-like popularity:

    p(item i | interest s) = (LOYALTY * [category(i) = s] + (1 - LOYALTY) / C) * within(i)

with C the number of categories that have items and within(i) = P(i | its category). So the user's recent
history tells the current interest (and so the next item) better than a static user id can, and the
chance that a (user, item) pair is the user's real review rather than a sampled negative is known
(`planted`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from bluewhale.atomic import publish_atomically
from bluewhale.dataset.amazon_books import AmazonBooks
from bluewhale.dataset.planted import check_key, key_rows, key_values, plain

GENERATOR_VERSION = 2
LOYALTY = 0.8  # a review's category is the current interest with this chance
SWITCH = 0.2  # before each of a user's later reviews, the interest moves to another category
CATEGORIES = 20
START = 1_200_000_000  # 2008-01-10
TWIN = "synthetic_amazon_books"


class SyntheticAmazonBooks(AmazonBooks):
    """Writes `<dir>/rows<N>_seed<S>_<meta_format>_v<V>/{reviews_Books_5.json,meta_Books.json}` once.

    `meta_format` is `literal` (the older dumps' Python-literal lines) or `json`.
    """

    planted_keys: tuple[str, ...] = ("reviewerID", "asin")

    def __init__(self, rows: int, seed: int, dir: str, meta_format: str = "literal", bad_rows: str = "error"):
        if rows < 100:
            raise ValueError(f"dataset.rows must be at least 100, got {rows}")
        if meta_format not in ("literal", "json"):
            raise ValueError(f"dataset.meta_format must be 'literal' or 'json', got {meta_format!r}")
        self.folder = Path(dir) / f"rows{rows}_seed{seed}_{meta_format}_v{GENERATOR_VERSION}"
        super().__init__(path=str(self.folder), bad_rows=bad_rows)
        self.rows, self.seed, self.meta_format = rows, seed, meta_format

    def prepare(self) -> None:
        if not (self.folder / "planted.npz").exists():
            with publish_atomically(self.folder) as tmp:
                write_planted_amazon_books(tmp, self.rows, self.seed, self.meta_format)

    def truth(self) -> dict[str, np.ndarray]:
        """The generator's truth: per review row `row_user`, `row_item`, `row_interest` (the user's current
        interest, a category number); per user `users` (reviewerID); per item `asins`, `item_category`,
        `within` (P(item | its category)); `categories` (those with items)."""
        self.prepare()
        with np.load(self.folder / "planted.npz") as saved:
            return {name: saved[name] for name in saved.files}

    def item_probability(self, items: np.ndarray, interest: np.ndarray, truth: dict) -> np.ndarray:
        """p(item | current interest): the chance that a review written under `interest` is of `items`
        (indices into `truth["asins"]`)."""
        category = truth["item_category"][items]
        share = LOYALTY * (category == interest) + (1 - LOYALTY) / len(truth["categories"])
        return share * truth["within"][items]

    def planted(self, keys: pa.Table) -> np.ndarray:
        """P(the pair is the real review | it is the real review or a sampled negative), for each row of
        `keys`: the review's true probability for `__sub` = 0 and a negative's for `__sub` > 0.

        A row's pair is (`__key_reviewerID`, `__key_asin`) at the time of input row `__row` (a negative
        shares its positive's row): with p = p(asin | the user's true current interest at that review),

            P = p / (p + r * (1 - p) / (M - 1))

        the Bayes-optimal score when each review is followed by r negatives whose item is drawn uniformly
        from M items other than the review's own, as RecDP's `negative_sample` draws them from the train
        items. It assumes that every reviewed item is among the train items (M = the number of distinct
        items in the reviews) and takes r as the largest `__sub` in `keys` (1 when there are no negatives).
        It is monotone in p, so its AUC is exact whatever M and r are; only its logloss leans on them.
        It uses the true interest, which no model sees, so it is a ceiling a model with the history can
        approach but not pass.
        """
        truth = self.truth()
        row, sub = key_rows(keys, len(truth["row_user"]), TWIN)
        key_values(keys, "reviewerID", TWIN)  # required: a negative shares its review's user
        check_key(keys, "reviewerID", truth["users"][truth["row_user"][row]], TWIN)
        asins = key_values(keys, "asin", TWIN).astype(str)
        item = _lookup(truth["asins"], asins, "asin")
        if (bad := (sub == 0) & (item != truth["row_item"][row])).any():
            at = int(np.flatnonzero(bad)[0])
            reviewed = plain(truth["asins"][truth["row_item"][row[at]]])
            raise ValueError(
                f"{TWIN}.planted: keys row {at} is input row {row[at]} itself (__sub=0) but says "
                f"__key_asin={plain(asins[at])!r}; that review is of {reviewed!r}"
            )
        p = self.item_probability(item, truth["row_interest"][row], truth)
        reviewed = len(np.unique(truth["row_item"]))
        ratio = max(int(sub.max(initial=0)), 1)
        return p / (p + ratio * (1 - p) / (reviewed - 1))

    def planted_probability(self) -> None:
        """Every row is a positive review: there is no per-row click chance; `planted(keys)` scores pairs."""
        return None


def _lookup(vocabulary: np.ndarray, values: np.ndarray, what: str) -> np.ndarray:
    """The index of each of `values` in `vocabulary` (unique); an unknown value is an error."""
    order = np.argsort(vocabulary)
    place = np.minimum(np.searchsorted(vocabulary, values, sorter=order), len(vocabulary) - 1)
    found = order[place]
    if (bad := vocabulary[found] != values).any():
        at = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{TWIN}.planted: keys row {at} has __key_{what}={plain(values[at])!r}, which the twin never wrote"
        )
    return found


def _asin(rng: np.random.Generator, n: int) -> list[str]:
    digits = rng.integers(0, 10**9, size=n)
    return [f"0{d:09d}" if k % 3 else f"B{d:09d}" for k, d in enumerate(digits)]


def write_planted_amazon_books(folder: Path, rows: int, seed: int, meta_format: str) -> None:
    """Write reviews (JSON lines, users' reviews in time order), meta (literal or JSON lines) and the truth."""
    rng = np.random.default_rng(seed)
    items = max(rows // 5, 20)
    asins = np.array(list(dict.fromkeys(_asin(rng, items * 2)))[:items])
    item_category = rng.integers(0, CATEGORIES, size=items)
    popularity = 1.0 / rng.permutation(np.arange(1, items + 1)) ** 0.8
    within = np.empty(items)
    members = [np.flatnonzero(item_category == c) for c in range(CATEGORIES)]
    for m in members:
        within[m] = popularity[m] / popularity[m].sum()
    categories = np.array([c for c in range(CATEGORIES) if len(members[c])])  # few items: some may be empty

    # 5-core: every user has at least five reviews
    counts = 5 + rng.geometric(0.15, size=rows // 5 + 1) - 1
    users_needed = int(np.searchsorted(np.cumsum(counts), rows)) + 1
    counts = counts[:users_needed]
    counts[-1] -= counts.sum() - rows
    if counts[-1] < 5 and len(counts) > 1:
        counts[-2] += counts[-1]
        counts = counts[:-1]
    users = np.array([f"A{n:013X}" for n in rng.integers(0, 16**13, size=len(counts))])
    category_names = [f"Genre {c:02d}" for c in range(CATEGORIES)]
    user = np.repeat(np.arange(len(counts)), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])  # each user's first review

    # the interest chain: a uniform start, then a jump to another category before a review w.p. SWITCH
    jump = (
        rng.integers(1, len(categories), size=rows) * (rng.random(rows) < SWITCH)
        if len(categories) > 1
        else 0
    )
    jump = np.where(np.isin(np.arange(rows), first), 0, jump)
    moved = np.cumsum(jump)
    state = (rng.integers(0, len(categories), size=len(counts))[user] + moved - moved[first][user]) % len(
        categories
    )
    interest = categories[state]
    loyal = rng.random(rows) < LOYALTY
    cats = np.where(loyal, interest, categories[rng.integers(0, len(categories), size=rows)])
    item = np.empty(rows, dtype=np.int64)
    for c in categories:  # within a category, by popularity (inverse CDF of `within`)
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
        review = {"reviewerID": str(users[user[n]]), "asin": str(asins[item[n]])}
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
    for k, asin in enumerate(asins.tolist()):
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
        record["related"] = {"also_bought": asins[max(k - 2, 0) : k].tolist()}
        meta_lines.append(repr(record) if meta_format == "literal" else json.dumps(record))
    (folder / "meta_Books.json").write_text("\n".join(meta_lines) + "\n")
    np.savez(
        folder / "planted.npz",
        users=users,
        asins=asins,
        item_category=item_category,
        within=within,
        categories=categories,
        row_user=user.astype(np.int32),
        row_item=item.astype(np.int32),
        row_interest=interest.astype(np.int16),
    )
    (folder / "generator.json").write_text(
        json.dumps({"version": GENERATOR_VERSION, "rows": rows, "seed": seed, "meta_format": meta_format})
    )
