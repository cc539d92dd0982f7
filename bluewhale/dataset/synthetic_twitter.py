"""A planted Twitter RecSys 2021 file: engagements drawn from a known four-task model, in the `\\x01` format.

Each task's logit sums an engaging-user propensity, an author popularity, whether the engager follows
the author, the tweet type and its media; the intercepts give the real data's rough engagement rates.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from bluewhale.atomic import publish_atomically
from bluewhale.dataset.planted import intercept_for_rate, positive_rows, sigmoid, zipf_choice
from bluewhale.dataset.twitter import SEPARATOR, TASKS, TWEET_TYPES, TwitterRecSys2021

GENERATOR_VERSION = 1
RATES = {"reply": 0.03, "retweet": 0.09, "quote": 0.01, "like": 0.40}
LANGUAGES = 12
START, END = 1_612_137_600, 1_614_556_800  # February 2021, the challenge's time span


class SyntheticTwitterRecSys2021(TwitterRecSys2021):
    """Writes `<dir>/rows<N>_seed<S>_v<V>/part-00000` once, with the planted probabilities beside it."""

    planted_keys: tuple[str, ...] = ()  # a row's truth is found by its input row alone

    def __init__(self, rows: int, seed: int, dir: str, bad_rows: str = "error") -> None:
        if rows < 1000:
            raise ValueError(f"dataset.rows must be at least 1000, got {rows}")
        self.folder = Path(dir) / f"rows{rows}_seed{seed}_v{GENERATOR_VERSION}"
        super().__init__(path=str(self.folder / "part-00000"), bad_rows=bad_rows)
        self.rows, self.seed = rows, seed

    def prepare(self) -> None:
        if not self.path.exists():
            with publish_atomically(self.folder) as tmp:
                write_planted_twitter(tmp, self.rows, self.seed)

    def planted_probabilities(self) -> dict[str, np.ndarray]:
        """Each task's true engagement probability for every row, in file order."""
        self.prepare()
        table = np.load(self.folder / "planted_probability.npy")
        return {task: table[:, k] for k, task in enumerate(TASKS)}

    def planted_probability(self) -> np.ndarray:
        """The like task's true probability (the `label` task)."""
        return self.planted_probabilities()["like"]

    def planted(self, keys: pa.Table) -> np.ndarray:
        """[n, 4]: each task's true probability (columns in `labels` order: reply, retweet, quote, like)
        for each row of `keys` (by `__row`; sampled negatives are refused)."""
        self.prepare()
        truth = np.load(self.folder / "planted_probability.npy")
        return truth[positive_rows(keys, len(truth), "synthetic_twitter_recsys2021")].astype(np.float64)


def _hex_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` distinct 32-character uppercase hex ids, as the challenge writes users, tweets and hashtags."""
    return np.array([f"{a:016X}{b:016X}" for a, b in rng.integers(0, 2**63, size=(n, 2))])


def write_planted_twitter(folder: Path, rows: int, seed: int) -> None:
    """Write `part-00000` (24 `\\x01`-separated fields a line) and `planted_probability.npy` (rows x 4)."""
    rng = np.random.default_rng(seed)
    authors, engagers = max(rows // 20, 10), max(rows // 5, 10)
    author_ids, engager_ids, tweet_ids = _hex_ids(rng, authors), _hex_ids(rng, engagers), _hex_ids(rng, rows)
    hashtag_ids, domain_ids, languages = _hex_ids(rng, 200), _hex_ids(rng, 50), _hex_ids(rng, LANGUAGES)
    popularity = rng.normal(0, 0.7, size=(authors, len(TASKS)))
    propensity = rng.normal(0, 0.7, size=(engagers, len(TASKS)))
    type_effect = rng.normal(0, 0.5, size=(len(TWEET_TYPES), len(TASKS)))
    author_followers = np.floor(rng.lognormal(6, 2, size=authors)).astype(np.int64)
    engager_followers = np.floor(rng.lognormal(4, 1.5, size=engagers)).astype(np.int64)
    author_verified, engager_verified = rng.random(authors) < 0.1, rng.random(engagers) < 0.01

    author, engager = zipf_choice(rng, authors, rows, 0.9), zipf_choice(rng, engagers, rows, 0.7)
    tweet_type = rng.choice(len(TWEET_TYPES), size=rows, p=[0.6, 0.25, 0.05, 0.1])
    follows = rng.random(rows) < 0.45
    media = rng.choice(
        ["", "Photo", "Video", "GIF", "Photo\tPhoto"], size=rows, p=[0.6, 0.25, 0.1, 0.03, 0.02]
    )
    logit = popularity[author] + propensity[engager] + type_effect[tweet_type]
    logit += np.outer(follows, [1.0, 0.8, 0.5, 0.6]) + np.outer(media != "", [0.0, 0.2, 0.0, 0.5])
    probability = np.empty((rows, len(TASKS)))
    for k, task in enumerate(TASKS):
        probability[:, k] = sigmoid(logit[:, k] + intercept_for_rate(logit[:, k], RATES[task]))
    engaged = rng.random((rows, len(TASKS))) < probability

    tweet_time = np.sort(rng.integers(START, END, size=rows))
    created = rng.integers(1_200_000_000, START, size=(2, rows))
    delay = rng.integers(1, 86_400, size=(rows, len(TASKS)))
    lines = []
    for n in range(rows):
        tokens = "\t".join(map(str, [101, *rng.integers(1000, 30000, size=rng.integers(3, 30)), 102]))
        tags = (
            "\t".join(hashtag_ids[rng.integers(0, 200, size=rng.integers(1, 4))])
            if rng.random() < 0.2
            else ""
        )
        link = rng.random() < 0.15
        a, e = author[n], engager[n]
        fields = [
            tokens,
            tags,
            tweet_ids[n],
            media[n],
            _hex_ids(rng, 1)[0] if link else "",
            domain_ids[rng.integers(0, 50)] if link else "",
            TWEET_TYPES[tweet_type[n]],
            languages[min(int(rng.exponential(2)), LANGUAGES - 1)],
            str(tweet_time[n]),
            author_ids[a],
            str(author_followers[a]),
            str(rng.integers(0, 2000)),
            "true" if author_verified[a] else "false",
            str(created[0, n]),
            engager_ids[e],
            str(engager_followers[e]),
            str(rng.integers(0, 2000)),
            "true" if engager_verified[e] else "false",
            str(created[1, n]),
            "true" if follows[n] else "false",
            *[str(tweet_time[n] + delay[n, k]) if engaged[n, k] else "" for k in range(len(TASKS))],
        ]
        lines.append(SEPARATOR.join(fields))
    (folder / "part-00000").write_text("\n".join(lines) + "\n")
    np.save(folder / "planted_probability.npy", probability.astype(np.float32))
    (folder / "generator.json").write_text(
        json.dumps({"version": GENERATOR_VERSION, "rows": rows, "seed": seed})
    )
