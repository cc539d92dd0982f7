"""A planted Criteo: a real `train.txt`-format file drawn from a known click model.

Because the generator knows each row's true click probability, the best AUC any model can reach on the
test rows is known too (`optimal_test_auc`), so a model's quality is measured against a ceiling.

The click model is what DLRM is built to learn: per-value effects of some categorical features,
pairwise dot products of latent vectors of others, and a linear effect of log(1 + dense). Values
follow Zipf-like frequencies, so rare values exist and the frequency threshold matters; fields are
empty at realistic rates and I2 takes small negative values, as in the real logs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from bluewhale.atomic import publish_atomically
from bluewhale.dataset.criteo import COLUMNS, DENSE, SPARSE, CriteoFile
from bluewhale.dataset.planted import positive_rows

GENERATOR_VERSION = 1
CLICK_RATE = 0.25
LATENT_DIM = 4
INTERACTING_PAIRS = [(0, 1), (2, 3), (4, 5), (0, 6)]  # indices into SPARSE

# Criteo Kaggle's 26 categorical vocabulary sizes (C1..C26, every value seen in the 45.8M training lines;
# the counts the facebookresearch/dlrm reference reports for it): 33,762,577 rows in all.
KAGGLE_CARDINALITIES = (
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194,
    27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
)  # fmt: skip
PRESETS = {"kaggle": KAGGLE_CARDINALITIES}


def resolve_cardinalities(cardinalities: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """`dataset.cardinalities` as 26 vocabulary sizes: None (the drawn default), a preset name, or a list."""
    if cardinalities is None:
        return None
    if isinstance(cardinalities, str):
        if cardinalities not in PRESETS:
            raise ValueError(
                f"dataset.cardinalities: unknown preset {cardinalities!r}; expected one of {sorted(PRESETS)}"
                " or a list of 26 positive integers"
            )
        return PRESETS[cardinalities]
    sizes = tuple(cardinalities)
    if len(sizes) != len(SPARSE) or not all(isinstance(n, int) and n >= 1 for n in sizes):
        raise ValueError(
            f"dataset.cardinalities: expected {len(SPARSE)} positive integers (C1..C26), got {list(sizes)}"
        )
    return sizes


class SyntheticCriteo(CriteoFile):
    """Writes `<dir>/rows<N>_seed<S>_v<V>/train.txt` once (and the planted probabilities beside it)."""

    planted_keys: tuple[str, ...] = ()  # a row's truth is found by its input row alone

    def __init__(
        self,
        rows: int,
        seed: int,
        dir: str,
        bad_rows: str = "error",
        cardinalities: str | Sequence[int] | None = None,
    ) -> None:
        if rows < 1000:
            raise ValueError(f"dataset.rows must be at least 1000, got {rows}")
        self.cardinalities = resolve_cardinalities(cardinalities)
        folder = Path(dir) / f"rows{rows}_seed{seed}{_cardinality_tag(cardinalities)}_v{GENERATOR_VERSION}"
        super().__init__(path=str(folder / "train.txt"), bad_rows=bad_rows)
        self.rows, self.seed, self.folder = rows, seed, folder

    def prepare(self) -> None:
        if not (self.folder / "train.txt").exists():
            with publish_atomically(self.folder) as tmp:
                write_planted_criteo(tmp, self.rows, self.seed, self.cardinalities)

    def planted_probability(self) -> np.ndarray:
        """The true click probability of every row of `train.txt`, in file order."""
        self.prepare()
        return np.load(self.folder / "planted_probability.npy")

    def planted(self, keys: pa.Table) -> np.ndarray:
        """The true click probability of each row of `keys` (by `__row`; sampled negatives are refused)."""
        truth = self.planted_probability()
        return truth[positive_rows(keys, len(truth), "synthetic_criteo")].astype(np.float64)


def _cardinality_tag(cardinalities: str | Sequence[int] | None) -> str:
    """The folder-name part that tells vocabularies apart ("" for the default, so its files stay put)."""
    if cardinalities is None:
        return ""
    if isinstance(cardinalities, str):
        return f"_{cardinalities}"
    digest = hashlib.sha1(",".join(str(int(n)) for n in cardinalities).encode()).hexdigest()[:10]
    return f"_card{digest}"


def write_planted_criteo(
    folder: Path, rows: int, seed: int, cardinalities: Sequence[int] | None = None
) -> None:
    """Write `train.txt` (Criteo TSV) and `planted_probability.npy` (one float per line) to `folder`.

    `cardinalities` (26 sizes) replaces the drawn vocabulary sizes; every other parameter of the click
    model is drawn exactly as for the default, so only the tables' sizes differ.
    """
    rng = np.random.default_rng(seed)  # the click model's parameters: the same for any number of rows
    draw = np.random.default_rng([seed, rows])  # the rows themselves
    columns: dict[str, pa.Array] = {}
    logit = np.zeros(rows)

    # Dense: counts with heavy tails; I2 sometimes negative. Some of them carry signal through log1p.
    weight = rng.normal(0, 0.3, size=len(DENSE))
    for k, name in enumerate(DENSE):
        values = np.floor(draw.lognormal(mean=rng.uniform(0, 3), sigma=rng.uniform(0.5, 1.5), size=rows))
        if name == "I2":
            values = values - draw.choice([0, 1, 2, 3], p=[0.85, 0.08, 0.04, 0.03], size=rows)
        missing = draw.random(rows) < rng.uniform(0.0, 0.4)
        if k % 2 == 0:  # the signal is a function of what the pipeline makes of the field (empty -> 0)
            signal = np.log1p(np.maximum(np.where(missing, 0, values), 0))
            logit += weight[k] * (signal - signal.mean()) / (signal.std() + 1e-9)
        columns[name] = pa.array(values.astype(np.int64), mask=missing)

    # Sparse: Zipf-like draws from a per-feature vocabulary of random 32-bit hashes.
    ids, sizes = {}, {}
    for j, name in enumerate(SPARSE):
        cardinality = int(np.exp(rng.uniform(np.log(4), np.log(20_000 if j >= 13 else 100))))
        if cardinalities is not None:  # the draw above still happens: the parameter stream stays aligned
            cardinality = int(cardinalities[j])
        sizes[j] = cardinality
        freq = 1.0 / np.arange(1, cardinality + 1) ** rng.uniform(1.0, 1.4)
        ids[j] = draw.choice(cardinality, size=rows, p=freq / freq.sum())
        missing = draw.random(rows) < (rng.uniform(0.0, 0.3) if j % 3 == 0 else 0.0)
        if j < 13:  # the first half carries per-value effects; the rest is noise, as many real fields are
            effect = rng.normal(0, 0.3, size=cardinality)
            logit += effect[ids[j]] * ~missing
        hashes = rng.choice(2**32, size=cardinality, replace=False)
        used, codes = np.unique(ids[j], return_inverse=True)  # format only the values drawn, not all
        vocab = _hex8(hashes[used])
        columns[name] = pa.DictionaryArray.from_arrays(pa.array(codes, mask=missing), vocab).cast(pa.string())
        ids[j] = np.where(missing, -1, ids[j])

    for a, b in INTERACTING_PAIRS:
        latent_a = rng.normal(0, 0.5, size=(sizes[a], LATENT_DIM))
        latent_b = rng.normal(0, 0.5, size=(sizes[b], LATENT_DIM))
        logit += np.einsum("nd,nd->n", latent_a[ids[a]], latent_b[ids[b]]) * (ids[a] >= 0) * (ids[b] >= 0)

    logit += _intercept_for_rate(logit, CLICK_RATE)
    probability = 1.0 / (1.0 + np.exp(-logit))
    label = (draw.random(rows) < probability).astype(np.int8)

    table = pa.table([pa.array(label), *(columns[c] for c in COLUMNS[1:])], names=COLUMNS)
    pacsv.write_csv(
        table,
        folder / "train.txt",
        write_options=pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none"),
    )
    np.save(folder / "planted_probability.npy", probability.astype(np.float32))
    meta = {"version": GENERATOR_VERSION, "rows": rows, "seed": seed}
    if cardinalities is not None:
        meta["cardinalities"] = [int(n) for n in cardinalities]
    (folder / "generator.json").write_text(json.dumps(meta))


def _hex8(values: np.ndarray) -> pa.Array:
    """32-bit integers as 8 lower-case hex digits (vectorised: Kaggle-sized vocabularies have millions)."""
    nibbles = (values.astype(np.uint64)[:, None] >> np.arange(28, -1, -4, dtype=np.uint64)) & 0xF
    chars = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[nibbles.astype(np.intp)]
    return pa.array(np.ascontiguousarray(chars).view("S8").ravel()).cast(pa.string())


def _intercept_for_rate(logit: np.ndarray, rate: float) -> float:
    """The constant that makes the mean click probability equal `rate` (bisection; it is monotone)."""
    low, high = -20.0, 20.0
    for _ in range(60):
        mid = (low + high) / 2
        if np.mean(1.0 / (1.0 + np.exp(-(logit + mid)))) < rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2
