"""A planted MovieLens: ratings drawn from user and item factors and a drifting taste, in a published format.

Every item has a primary genre (the first one its item file lists; a few items list none). Each user's
current taste is a genre that follows a Markov chain along their own ratings in time order: uniform at
first, then before each later rating it jumps with probability `SWITCH` to another genre (uniformly).
The item rated is one of the current taste's genre with probability `LOYALTY` (by popularity within
the genre), else any item by popularity. A rating is round(x) of a continuous score

    x = BASE + user·item + item bias + MATCH * [primary genre of the item = current taste] + noise

(noise logistic with scale `NOISE_SCALE`), so the chance that the written rating reaches
`positive_rating` is known exactly for every row, and a model that sees the user's recent items (their
genres) can tell the current taste that a static user id cannot.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from bluewhale.atomic import publish_atomically
from bluewhale.dataset.movielens import GENRES_100K, ITEM_FILES, NO_GENRES, VARIANTS, MovieLens
from bluewhale.dataset.planted import check_key, positive_rows, sigmoid, zipf_choice

GENERATOR_VERSION = 3  # 3: ml-100k's density (about 100 ratings a user, 60 an item)
RATINGS_PER_USER, RATINGS_PER_ITEM = 100, 60  # as in ml-100k: 100,000 ratings, 943 users, 1,682 items
LATENT_DIM = 4
NOISE_SCALE = 0.5  # of the logistic noise on the continuous score
BASE = 2.6
MATCH = 1.5  # the score's lift when the item's primary genre is the user's current taste
LOYALTY = 0.7  # the chance that a rating is of an item of the current taste's genre
SWITCH = 0.1  # before each of a user's later ratings, the taste moves to another genre
NO_GENRE_EVERY = 25  # every 25th item lists no genre, as some real ones do
TWIN = "synthetic_movielens"


class SyntheticMovieLens(MovieLens):
    """Writes `<dir>/<variant>_rows<N>_seed<S>_v<V>/<file>` once, in the chosen variant's format."""

    planted_keys: tuple[str, ...] = ("user_id", "item_id")  # checked against the row: never a wrong row

    def __init__(
        self,
        rows: int,
        seed: int,
        dir: str,
        variant: str = "ml-100k",
        positive_rating: float = 4.0,
        bad_rows: str = "error",
    ) -> None:
        if rows < 100:
            raise ValueError(f"dataset.rows must be at least 100, got {rows}")
        if variant not in VARIANTS:
            raise ValueError(f"dataset.variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        self.folder = Path(dir) / f"{variant}_rows{rows}_seed{seed}_v{GENERATOR_VERSION}"
        super().__init__(str(self.folder / VARIANTS[variant][0]), variant, positive_rating, bad_rows)
        self.rows, self.seed = rows, seed

    def prepare(self) -> None:
        if not self.path.exists():
            with publish_atomically(self.folder) as tmp:
                write_planted_movielens(tmp, self.rows, self.seed, self.variant, self.positive_rating)

    def truth(self) -> dict[str, np.ndarray]:
        """Per rating, in file order: `probability` (P(label = 1)), `user_id`, `item_id`, `taste` (the
        user's current genre, an index into GENRES_100K), `genre` (the item's primary genre, -1: none),
        `static_score` (the score without the taste term) and `cut` (label 1 when the score plus noise
        reaches it)."""
        self.prepare()
        with np.load(self.folder / "planted.npz") as saved:
            return {name: saved[name] for name in saved.files}

    def planted_probability(self) -> np.ndarray:
        """P(label = 1) of every row, in file order."""
        return self.truth()["probability"]

    def planted(self, keys: pa.Table) -> np.ndarray:
        """P(label = 1) of each row of `keys`, by `__row` (sampled negatives are refused); its
        `__key_user_id` and `__key_item_id`, where present, must be that row's."""
        truth = self.truth()
        row = positive_rows(keys, len(truth["probability"]), TWIN)
        for column in self.planted_keys:
            check_key(keys, column, truth[column][row], TWIN)
        return truth["probability"][row].astype(np.float64)


def taste_chain(rng: np.random.Generator, user: np.ndarray, states: int, switch: float) -> np.ndarray:
    """A state in [0, states) for each row: per user (rows in order), uniform at the user's first row,
    then at each later row it moves with chance `switch` to one of the other states, uniformly."""
    rows = len(user)
    order = np.argsort(user, kind="stable")  # each user's rows together, in row order
    grouped = user[order]
    first = np.r_[True, grouped[1:] != grouped[:-1]]
    jump = rng.integers(1, max(states, 2), size=rows) * (rng.random(rows) < switch) * (states > 1)
    moved = np.cumsum(np.where(first, 0, jump))
    start = np.maximum.accumulate(np.where(first, np.arange(rows), 0))  # the user's first position
    state = np.empty(rows, dtype=np.int64)
    state[order] = (rng.integers(0, states, size=rows)[start] + moved - moved[start]) % states
    return state


def write_planted_movielens(folder: Path, rows: int, seed: int, variant: str, positive_rating: float) -> None:
    """Write the ratings file of `variant`, its item file and `planted.npz` (the truth per row) to `folder`."""
    rng = np.random.default_rng(seed)
    users, items = max(rows // RATINGS_PER_USER, 10), max(rows // RATINGS_PER_ITEM, 20)
    user_factor = rng.normal(0, 0.6, size=(users, LATENT_DIM))
    item_factor = rng.normal(0, 0.6, size=(items, LATENT_DIM))
    item_bias = rng.normal(0, 0.5, size=items)
    genres = item_genres(rng, items)
    primary = np.array([g[0] if g else -1 for g in genres])
    tastes = np.unique(primary[primary >= 0])  # the genres that have items

    user = zipf_choice(rng, users, rows, 0.8)  # rows are in time order (timestamps are sorted below)
    taste = tastes[taste_chain(rng, user, len(tastes), SWITCH)]
    popularity = 1.0 / np.arange(1, items + 1)
    item = zipf_choice(rng, items, rows, 1.0)
    loyal = rng.random(rows) < LOYALTY
    for g in tastes:  # a loyal rating: an item of the taste's genre, by popularity
        at = np.flatnonzero(loyal & (taste == g))
        members = np.flatnonzero(primary == g)
        if at.size:
            cdf = np.cumsum(popularity[members])
            item[at] = members[np.minimum(np.searchsorted(cdf, rng.random(at.size) * cdf[-1]), len(cdf) - 1)]
    static = BASE + np.einsum("nd,nd->n", user_factor[user], item_factor[item]) + item_bias[item]
    score = static + MATCH * (primary[item] == taste)
    x = score + rng.logistic(0, NOISE_SCALE, size=rows)
    half_stars = variant == "ml-25m"
    if half_stars:
        rating = np.clip(np.round(x * 2) / 2, 0.5, 5.0)
        cut = positive_rating - 0.25  # round(2x)/2 >= r exactly when x >= r - 1/4
    else:
        rating = np.clip(np.round(x), 1, 5)
        cut = positive_rating - 0.5
    probability = sigmoid((score - cut) / NOISE_SCALE)
    timestamp = np.sort(rng.integers(956_703_932, 1_046_454_590, size=rows))  # ml-1m's time span
    if variant != "ml-100k":  # ml-1m and ml-25m list ratings grouped by user
        order = np.argsort(user, kind="stable")
        user, item, rating, timestamp, probability, taste, static = (
            a[order] for a in (user, item, rating, timestamp, probability, taste, static)
        )

    ids = (user + 1, item + 1)  # MovieLens ids start at 1
    stars = [f"{r:.1f}" for r in rating] if half_stars else [str(int(r)) for r in rating]
    name, delimiter, _, header, _ = VARIANTS[variant]
    separator = "::" if variant == "ml-1m" else delimiter
    lines = [separator.join(header)] if header else []
    lines += [
        f"{u}{separator}{i}{separator}{r}{separator}{t}"
        for u, i, r, t in zip(ids[0], ids[1], stars, timestamp, strict=True)
    ]
    (folder / name).write_text("\n".join(lines) + "\n")
    write_items(folder, variant, genres)
    np.savez(
        folder / "planted.npz",
        probability=probability,
        user_id=ids[0].astype(np.int64),
        item_id=ids[1].astype(np.int64),
        taste=taste.astype(np.int16),
        genre=primary[item].astype(np.int16),
        static_score=static,
        cut=cut,
    )
    (folder / "generator.json").write_text(
        json.dumps({"version": GENERATOR_VERSION, "rows": rows, "seed": seed, "variant": variant})
    )


def item_genres(rng: np.random.Generator, items: int) -> list[list[int]]:
    """Each item's genres (indices into GENRES_100K, 1-18, ascending, so every format lists the primary
    genre first): a primary genre, then up to two more after it; every `NO_GENRE_EVERY`-th item has none."""
    genres = []
    for i in range(items):
        if i % NO_GENRE_EVERY == NO_GENRE_EVERY - 1:
            genres.append([])
            continue
        first = int(rng.integers(1, 19))
        later = np.arange(first + 1, 19)
        extra = rng.choice(later, size=min(int(rng.integers(0, 3)), len(later)), replace=False)
        genres.append([first, *sorted(int(g) for g in extra)])
    return genres


def write_items(folder: Path, variant: str, genres: list[list[int]]) -> None:
    """The variant's item file: u.item (latin-1, '|', genre flags), movies.dat (latin-1, '::'), movies.csv."""
    items = len(genres)
    # titles with the characters each format must survive: ':' in movies.dat, ',' and '"' in movies.csv
    titles = [f'Film {i + 1}: Café, "Cut" ({1950 + i % 60})' for i in range(items)]
    path = folder / ITEM_FILES[variant]
    if variant == "ml-100k":
        rows = []
        for i, (title, g) in enumerate(zip(titles, genres, strict=True)):
            flags = ["1" if k in g or (k == 0 and not g) else "0" for k in range(len(GENRES_100K))]
            url = f"http://us.imdb.com/M/title-exact?Film%20{i + 1}"
            rows.append("|".join([str(i + 1), title.replace(",", ""), "01-Jan-1995", "", url, *flags]))
        path.write_text("\n".join(rows) + "\n", encoding="latin1")
    elif variant == "ml-1m":
        rows = [
            f"{i + 1}::{t}::{'|'.join(GENRES_100K[k] for k in g)}"
            for i, (t, g) in enumerate(zip(titles, genres, strict=True))
        ]
        path.write_text("\n".join(rows) + "\n", encoding="latin1")
    else:
        with open(path, "w", newline="", encoding="utf8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["movieId", "title", "genres"])
            for i, (t, g) in enumerate(zip(titles, genres, strict=True)):
                writer.writerow([i + 1, t, "|".join(GENRES_100K[k] for k in g) or NO_GENRES])
