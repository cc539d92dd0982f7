"""A planted Outbrain: displays of 2-8 ads, exactly one clicked, drawn from a known softmax, as the CSVs.

An ad's score is its own quality, its advertiser's affinity for the platform, a bonus when its document
shares the main topic of the page it is shown on, and a planted cross: an effect of the pair
(`geo_state` of the display, `advertiser_id` of the ad) that neither column carries alone. For a random
`CROSS_SHARE` of the (state, advertiser) pairs (a missing state is one more value) it is +-`CROSS`, the
rest 0; the whole table is then centred so that its mean over states (weighted by how often each state
is drawn) is 0 for every advertiser and its mean over advertisers (weighted by their share of the ads) is
0 for every state. It is full rank and has no marginal effect, so a model learns it by memorising the
pair, as the wide part of Wide & Deep does over a declared cross. The clicked ad of a display is drawn
by the softmax of the scores, so each row's chance of being the click (and the best MAP@12) is known.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from bluewhale.atomic import publish_atomically
from bluewhale.dataset.outbrain import FILES, SIDE_FILES, Outbrain
from bluewhale.dataset.planted import check_key, positive_rows, zipf_choice

GENERATOR_VERSION = 3  # 3: ads recur (about 100 impressions each), as real ads do
TOPICS = 30
TOPIC_MATCH = 1.5
CROSS = 2.0  # the planted (geo_state, advertiser_id) effect on the pairs that have one, before centring
CROSS_SHARE = 0.3  # the share of (state, advertiser) pairs with an effect
IMPRESSIONS_PER_AD = 100  # a model can learn an ad's own quality (real ads: about 180 on average)
ADS_PER_ADVERTISER = 4  # few enough advertisers that each (state, advertiser) pair recurs
DAYS_MS = 15 * 86_400_000  # the published events span about two weeks
# geo_location as published (country>state>dma, or country>region, `--` unknown), each state code in one
# country only; drawn with Zipf-like weights, most often the first
GEOS = [
    "US>CA>807", "US>NY>501", "US>TX>623", "US>CA>803", "US>FL>528", "US>IL>602", "US>TX>618", "US>WA>819",
    "US>PA>504", "US>GA>524", "US>MA>506", "US>OH>510", "US>NC>560", "US>MI>505", "GB>H9", "GB>K2",
    "CA>ON", "CA>BC", "AU>02", "AU>07", "IN>16", "SG>00", "--", "",
]  # fmt: skip
TWIN = "synthetic_outbrain"


class SyntheticOutbrain(Outbrain):
    """Writes `<dir>/rows<N>_seed<S>_v<V>/*.csv` once (about `rows` clicks_train rows)."""

    planted_keys: tuple[str, ...] = ("display_id", "ad_id")  # checked against the row: never a wrong row

    def __init__(self, rows: int, seed: int, dir: str, bad_rows: str = "error") -> None:
        if rows < 100:
            raise ValueError(f"dataset.rows must be at least 100, got {rows}")
        folder = Path(dir) / f"rows{rows}_seed{seed}_v{GENERATOR_VERSION}"
        super().__init__(path=str(folder), bad_rows=bad_rows)
        self.rows, self.seed = rows, seed

    def prepare(self) -> None:
        if not (self.folder / "planted.npz").exists():
            with publish_atomically(self.folder) as tmp:
                write_planted_outbrain(tmp, self.rows, self.seed)

    def truth(self) -> dict[str, np.ndarray]:
        """Per clicks_train row, in file order: `probability` (its chance of being its display's click),
        `display_id`, `ad_id`, `score` (its softmax logit) and `cross` (the planted cross's part of it)."""
        self.prepare()
        with np.load(self.folder / "planted.npz") as saved:
            return {name: saved[name] for name in saved.files}

    def planted_probability(self) -> np.ndarray:
        """Each clicks_train row's true chance of being its display's click (they sum to 1 per display)."""
        return self.truth()["probability"]

    def planted(self, keys: pa.Table) -> np.ndarray:
        """Each row of `keys`' true chance of being its display's click, by `__row` (sampled negatives are
        refused); its `__key_display_id` and `__key_ad_id`, where present, must be that row's."""
        truth = self.truth()
        row = positive_rows(keys, len(truth["probability"]), TWIN)
        for column in self.planted_keys:
            check_key(keys, column, truth[column][row], TWIN)
        return truth["probability"][row].astype(np.float64)


def _write(path: Path, header: list[str], rows) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_planted_outbrain(folder: Path, rows: int, seed: int) -> None:
    """Write clicks_train, events, promoted_content, documents_meta/topics/categories/entities CSVs."""
    rng = np.random.default_rng(seed)
    documents, ads = max(rows // 4, 20), max(rows // IMPRESSIONS_PER_AD, 10)
    campaigns, advertisers = max(ads // 3, 2), max(ads // ADS_PER_ADVERTISER, 2)
    main_topic = rng.integers(0, TOPICS, size=documents)
    quality = rng.normal(0, 1.0, size=ads)
    affinity = rng.normal(0, 0.5, size=(advertisers, 4))  # platform 1-3, and unknown
    ad_document = rng.integers(0, documents, size=ads)
    ad_campaign = rng.integers(0, campaigns, size=ads)
    campaign_advertiser = rng.integers(0, advertisers, size=campaigns)
    ad_advertiser = campaign_advertiser[ad_campaign]
    geo_weight = 1.0 / np.arange(1, len(GEOS) + 1) ** 0.7
    geo_weight /= geo_weight.sum()
    states = [g.split(">")[1] if g.count(">") else "" for g in GEOS]  # "" : no state (null in the table)
    names = sorted(set(states))
    geo_state = np.array([names.index(x) for x in states])
    state_weight = np.bincount(geo_state, weights=geo_weight, minlength=len(names))
    cross = cross_effect(rng, state_weight, np.bincount(ad_advertiser, minlength=advertisers) / ads)

    sizes = rng.integers(2, 9, size=rows // 2 + 2)  # ads per display
    displays = int(np.searchsorted(np.cumsum(sizes), rows)) + 1
    sizes = np.minimum(sizes[:displays], ads)
    pages = zipf_choice(rng, documents, displays)
    platforms = rng.choice([1, 2, 3, 0], p=[0.45, 0.4, 0.14, 0.01], size=displays)  # 0: written as \N
    users = max(rows // 6, 5)
    uuids = np.array([f"{u:014x}" for u in rng.integers(0, 16**14, size=users)])
    viewers = uuids[rng.integers(0, users, size=displays)]
    times = np.sort(rng.integers(0, DAYS_MS, size=displays))  # display ids run in time order
    geo = rng.choice(len(GEOS), p=geo_weight, size=displays)
    geos = np.array(GEOS)[geo]

    clicks, probability, scores, crosses = [], [], [], []
    for display in range(displays):
        shown = rng.choice(ads, size=sizes[display], replace=False)
        platform = platforms[display]
        score = quality[shown] + affinity[ad_advertiser[shown], platform - 1]
        score = score + TOPIC_MATCH * (main_topic[ad_document[shown]] == main_topic[pages[display]])
        pair = cross[geo_state[geo[display]], ad_advertiser[shown]]
        score = score + pair
        p = np.exp(score - score.max())
        p /= p.sum()
        clicked = rng.choice(len(shown), p=p)
        clicks += [(display + 1, int(a), int(k == clicked)) for k, a in enumerate(shown)]
        probability += list(p)
        scores += list(score)
        crosses += list(pair)
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
    # confidences in fixed notation, as published (the readers refuse 3e-06)
    topics = [(d, int(main_topic[d]), f"{rng.uniform(0.3, 0.9):.6f}") for d in range(documents)]
    topics += [
        (d, int(rng.integers(0, TOPICS)), f"{rng.uniform(0.01, 0.1):.6f}") for d in range(0, documents, 3)
    ]
    _write(folder / SIDE_FILES["topics"].name, SIDE_FILES["topics"].columns, topics)
    categories = [
        (d, 1000 + int(main_topic[d]) % 7, f"{rng.uniform(0.5, 1.0):.6f}") for d in range(documents)
    ]
    _write(folder / SIDE_FILES["categories"].name, SIDE_FILES["categories"].columns, categories)
    entities = [
        (d, f"{int(rng.integers(0, 16**12)):032x}", f"{rng.uniform(0, 1):.6f}")
        for d in range(0, documents, 2)
    ]
    _write(folder / SIDE_FILES["entities"].name, SIDE_FILES["entities"].columns, entities)
    np.savez(
        folder / "planted.npz",
        probability=np.array(probability),
        display_id=np.array([c[0] for c in clicks], dtype=np.int64),
        ad_id=np.array([c[1] for c in clicks], dtype=np.int64),
        score=np.array(scores),
        cross=np.array(crosses),
    )
    (folder / "generator.json").write_text(
        json.dumps({"version": GENERATOR_VERSION, "rows": rows, "seed": seed})
    )


def cross_effect(
    rng: np.random.Generator, state_weight: np.ndarray, advertiser_weight: np.ndarray
) -> np.ndarray:
    """The planted [state, advertiser] effect: +-CROSS on a random CROSS_SHARE of the pairs, 0 elsewhere,
    then centred so that its weighted mean over states is 0 for every advertiser and its weighted mean
    over advertisers is 0 for every state (neither column alone carries any of it)."""
    shape = (len(state_weight), len(advertiser_weight))
    effect = CROSS * rng.choice([-1.0, 1.0], size=shape) * (rng.random(shape) < CROSS_SHARE)
    effect -= state_weight @ effect / state_weight.sum()  # each advertiser's mean over states: 0
    # each state's mean over advertisers: 0 (this keeps the advertisers' means at 0)
    effect -= (effect @ advertiser_weight / advertiser_weight.sum())[:, None]
    return effect
