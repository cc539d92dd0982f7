"""A planted Outbrain: displays of 2-8 ads, exactly one clicked, drawn from a known softmax, as the CSVs.

An ad's score is its own quality, its advertiser's affinity for the platform, and a bonus when its
document shares the main topic of the page it is shown on; the clicked ad of a display is drawn by the
softmax of the scores, so each row's chance of being the click (and the best MAP@12) is known.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from bluewhale.atomic import publish_atomically
from bluewhale.dataset.outbrain import FILES, SIDE_FILES, Outbrain
from bluewhale.dataset.planted import zipf_choice

GENERATOR_VERSION = 1
TOPICS = 30
TOPIC_MATCH = 1.5
DAYS_MS = 15 * 86_400_000  # the published events span about two weeks
GEOS = ["US>CA>807", "US>NY>501", "US>TX>623", "GB>H9", "SG>00", "CA>ON", "--", ""]


class SyntheticOutbrain(Outbrain):
    """Writes `<dir>/rows<N>_seed<S>_v<V>/*.csv` once (about `rows` clicks_train rows)."""

    def __init__(self, rows: int, seed: int, dir: str, bad_rows: str = "error") -> None:
        if rows < 100:
            raise ValueError(f"dataset.rows must be at least 100, got {rows}")
        folder = Path(dir) / f"rows{rows}_seed{seed}_v{GENERATOR_VERSION}"
        super().__init__(path=str(folder), bad_rows=bad_rows)
        self.rows, self.seed = rows, seed

    def prepare(self) -> None:
        if not (self.folder / "planted_probability.npy").exists():
            with publish_atomically(self.folder) as tmp:
                write_planted_outbrain(tmp, self.rows, self.seed)

    def planted_probability(self) -> np.ndarray:
        """Each clicks_train row's true chance of being its display's click (they sum to 1 per display)."""
        self.prepare()
        return np.load(self.folder / "planted_probability.npy")


def _write(path: Path, header: list[str], rows) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_planted_outbrain(folder: Path, rows: int, seed: int) -> None:
    """Write clicks_train, events, promoted_content, documents_meta/topics/categories/entities CSVs."""
    rng = np.random.default_rng(seed)
    documents, ads = max(rows // 4, 20), max(rows // 10, 10)
    campaigns, advertisers = max(ads // 3, 2), max(ads // 8, 2)
    main_topic = rng.integers(0, TOPICS, size=documents)
    quality = rng.normal(0, 1.0, size=ads)
    affinity = rng.normal(0, 0.5, size=(advertisers, 4))  # platform 1-3, and unknown
    ad_document = rng.integers(0, documents, size=ads)
    ad_campaign = rng.integers(0, campaigns, size=ads)
    campaign_advertiser = rng.integers(0, advertisers, size=campaigns)

    sizes = rng.integers(2, 9, size=rows // 2 + 2)  # ads per display
    displays = int(np.searchsorted(np.cumsum(sizes), rows)) + 1
    sizes = np.minimum(sizes[:displays], ads)
    pages = zipf_choice(rng, documents, displays)
    platforms = rng.choice([1, 2, 3, 0], p=[0.45, 0.4, 0.14, 0.01], size=displays)  # 0: written as \N
    users = max(rows // 6, 5)
    uuids = np.array([f"{u:014x}" for u in rng.integers(0, 16**14, size=users)])
    viewers = uuids[rng.integers(0, users, size=displays)]
    times = np.sort(rng.integers(0, DAYS_MS, size=displays))  # display ids run in time order
    geos = np.array(GEOS)[rng.integers(0, len(GEOS), size=displays)]

    clicks, probability = [], []
    for display in range(displays):
        shown = rng.choice(ads, size=sizes[display], replace=False)
        platform = platforms[display]
        score = quality[shown] + affinity[campaign_advertiser[ad_campaign[shown]], platform - 1]
        score = score + TOPIC_MATCH * (main_topic[ad_document[shown]] == main_topic[pages[display]])
        p = np.exp(score - score.max())
        p /= p.sum()
        clicked = rng.choice(len(shown), p=p)
        clicks += [(display + 1, int(a), int(k == clicked)) for k, a in enumerate(shown)]
        probability += list(p)
    platform_text = np.where(platforms == 0, "\\N", platforms.astype(str))
    events = zip(range(1, displays + 1), viewers, pages, times, platform_text, geos, strict=True)
    _write(folder / FILES["clicks"].name, FILES["clicks"].columns, clicks)
    _write(folder / FILES["events"].name, FILES["events"].columns, events)
    _write(
        folder / FILES["promoted"].name,
        FILES["promoted"].columns,
        [(a, ad_document[a], ad_campaign[a], campaign_advertiser[ad_campaign[a]]) for a in range(ads)],
    )
    meta = []
    for d in range(documents):
        source = "" if d % 17 == 0 else int(rng.integers(1, 500))  # the published file has gaps
        publisher = "" if d % 13 == 0 else int(rng.integers(1, 100))
        day = np.datetime64("2016-06-14") - np.timedelta64(int(rng.integers(0, 3000)), "D")
        published = "" if d % 11 == 0 else f"{day} {int(rng.integers(0, 24)):02d}:00:00"
        meta.append((d, source, publisher, published))
    _write(folder / FILES["documents_meta"].name, FILES["documents_meta"].columns, meta)
    topics = [(d, int(main_topic[d]), round(float(rng.uniform(0.3, 0.9)), 6)) for d in range(documents)]
    topics += [
        (d, int(rng.integers(0, TOPICS)), round(float(rng.uniform(0.01, 0.1)), 6))
        for d in range(0, documents, 3)
    ]
    _write(folder / SIDE_FILES["topics"].name, SIDE_FILES["topics"].columns, topics)
    categories = [
        (d, 1000 + int(main_topic[d]) % 7, round(float(rng.uniform(0.5, 1.0)), 6)) for d in range(documents)
    ]
    _write(folder / SIDE_FILES["categories"].name, SIDE_FILES["categories"].columns, categories)
    entities = [
        (d, f"{int(rng.integers(0, 16**12)):032x}", round(float(rng.uniform(0, 1)), 6))
        for d in range(0, documents, 2)
    ]
    _write(folder / SIDE_FILES["entities"].name, SIDE_FILES["entities"].columns, entities)
    np.save(folder / "planted_probability.npy", np.array(probability, dtype=np.float32))
    (folder / "generator.json").write_text(
        json.dumps({"version": GENERATOR_VERSION, "rows": rows, "seed": seed})
    )
