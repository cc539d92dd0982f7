"""A planted MovieLens: ratings drawn from user and item latent factors, written in a published format.

A rating is round(x) of a continuous score x = mean + user·item + item bias + logistic noise, so the
chance that the written rating reaches `positive_rating` is known exactly for every row.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from bluewhale.atomic import publish_atomically
from bluewhale.dataset.movielens import GENRES_100K, ITEM_FILES, NO_GENRES, VARIANTS, MovieLens
from bluewhale.dataset.planted import sigmoid, zipf_choice

GENERATOR_VERSION = 1
LATENT_DIM = 4
NOISE_SCALE = 0.5  # of the logistic noise on the continuous score


class SyntheticMovieLens(MovieLens):
    """Writes `<dir>/<variant>_rows<N>_seed<S>_v<V>/<file>` once, in the chosen variant's format."""

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

    def planted_probability(self) -> np.ndarray:
        """P(label = 1) of every row, in file order."""
        self.prepare()
        return np.load(self.folder / "planted_probability.npy")


def write_planted_movielens(folder: Path, rows: int, seed: int, variant: str, positive_rating: float) -> None:
    """Write the ratings file of `variant` and `planted_probability.npy` (one float per row) to `folder`."""
    rng = np.random.default_rng(seed)
    users, items = max(rows // 20, 10), max(rows // 10, 20)
    user_factor = rng.normal(0, 0.6, size=(users, LATENT_DIM))
    item_factor = rng.normal(0, 0.6, size=(items, LATENT_DIM))
    item_bias = rng.normal(0, 0.5, size=items)

    user = zipf_choice(rng, users, rows, 0.8)
    item = zipf_choice(rng, items, rows, 1.0)
    score = 3.4 + np.einsum("nd,nd->n", user_factor[user], item_factor[item]) + item_bias[item]
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
        user, item, rating, timestamp, probability = (
            a[order] for a in (user, item, rating, timestamp, probability)
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
    write_items(folder, variant, items, rng)
    np.save(folder / "planted_probability.npy", probability.astype(np.float32))
    (folder / "generator.json").write_text(
        json.dumps({"version": GENERATOR_VERSION, "rows": rows, "seed": seed, "variant": variant})
    )


def write_items(folder: Path, variant: str, items: int, rng: np.random.Generator) -> None:
    """The variant's item file: u.item (latin-1, '|', genre flags), movies.dat (latin-1, '::'), movies.csv."""
    genres = [sorted(rng.choice(18, size=rng.integers(0, 4), replace=False) + 1) for _ in range(items)]
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
