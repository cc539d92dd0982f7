"""Amazon Books reviews + meta (JSON lines and Python-literal lines), broken lines, and the planted twin."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

from bluewhale.dataset.amazon_books import AmazonBooks
from bluewhale.dataset.badrows import BadRowError
from bluewhale.dataset.planted import keys_table
from bluewhale.dataset.synthetic_amazon_books import LOYALTY, SyntheticAmazonBooks


def review(user="A2SUAM1J3GNN3B", asin="0000013714", overall=5.0, time=1252800000, **extra) -> str:
    record = {
        "reviewerID": user,
        "asin": asin,
        "reviewerName": "J. McDonald \u00e9",
        "helpful": [2, 3],
        "reviewText": 'I bought this for my husband who plays the piano.  "Great" purchase.',
        "overall": overall,
        "summary": "Heavenly Highway Hymns",
        "unixReviewTime": time,
        "reviewTime": "09 13, 2009",
    }
    return json.dumps(record | extra)


META = [
    {
        "asin": "0000013714",
        "title": "Heavenly Highway Hymns",
        "price": 13.02,
        "salesRank": {"Books": 20248},
        "categories": [["Books"], ["Books", "Religion", "Hymns"]],
        "related": {"also_bought": ["0005080789"]},
    },
    {"asin": "0000031909", "title": "Girl's Life", "categories": [["Books", "Children's Books"]]},
    {"asin": "0000031852", "imUrl": "http://ecx.images-amazon.com/images/I/51.jpg"},  # no categories
]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def books(folder: Path, reviews: list[str], meta: list[str] | None = None, **kwargs) -> AmazonBooks:
    write(folder / "reviews_Books_5.json", reviews)
    write(folder / "meta_Books.json", meta if meta is not None else [repr(m) for m in META])
    return AmazonBooks(str(folder), **kwargs)


@pytest.mark.parametrize("meta_format", [repr, json.dumps])
def test_reviews_joined_with_categories_from_either_meta_format(tmp_path, meta_format):
    reviews = [
        review(),
        review(user="AJ", asin="0000031909", overall=4, time=1252800001),
        review(asin="B0000UNKN"),
    ]
    data = books(tmp_path, reviews, [meta_format(m) for m in META])
    table, bad = data.read()
    assert bad.count == 0
    assert table.column("reviewerID").to_pylist() == ["A2SUAM1J3GNN3B", "AJ", "A2SUAM1J3GNN3B"]
    assert table.column("overall").to_pylist() == [5.0, 4.0, 5.0]
    assert table.column("unixReviewTime").cast("int64").to_pylist() == [1252800000, 1252800001, 1252800000]
    # the last element of the last category path; an item without meta or categories has none
    assert table.column("category").to_pylist() == ["Hymns", "Children's Books", None]
    assert table.column("label").to_pylist() == [1, 1, 1]
    meta = data.side_tables()["meta"]
    assert meta.to_pylist() == [
        {"asin": "0000013714", "title": "Heavenly Highway Hymns", "price": 13.02, "category": "Hymns"},
        {"asin": "0000031909", "title": "Girl's Life", "price": None, "category": "Children's Books"},
        {"asin": "0000031852", "title": None, "price": None, "category": None},
    ]


@pytest.mark.parametrize(
    "broken, reason",
    [
        (
            review()[:80],
            "expected a JSON object, got invalid JSON at column 72: Unterminated string starting at",
        ),
        (
            review().replace('"unixReviewTime"', '"time"'),
            "field unixReviewTime missing, expected integer seconds",
        ),
        (review(overall="5.0"), "field overall expected a rating number, got '5.0'"),
        (review(time=1252800000.5), "field unixReviewTime expected integer seconds, got 1252800000.5"),
        ("[1, 2]", "expected an object, got list"),
        ("", "empty line"),
    ],
)
def test_bad_review_lines_name_file_line_and_reason(tmp_path, broken, reason):
    data = books(tmp_path, [review(), review(), broken, review()])
    with pytest.raises(BadRowError) as err:
        data.read()
    assert str(err.value) == f"{data.reviews_path}:3: {reason}"


@pytest.mark.parametrize(
    "broken, reason",
    [
        (
            "{'asin': '0001', 'title': 'Unclosed}",
            "expected a JSON object or a Python literal, got neither (SyntaxError)",
        ),
        (
            "{'asin': '0001', 'title': __import__('os').getcwd()}",
            "expected a JSON object or a Python literal, got neither (ValueError)",
        ),
        (
            "{'asin': '0001', 'categories': [['Books', 3]]}",
            "field categories expected lists of strings, got [['Books', 3]]",
        ),
        ("{'title': 'No asin'}", "field asin missing, expected an asin string"),
        (repr(META[0]), "asin '0000013714' already listed above"),
    ],
)
def test_bad_meta_lines_name_file_line_and_reason(tmp_path, broken, reason):
    data = books(tmp_path, [review()], [repr(META[0]), repr(META[1]), broken])
    with pytest.raises(BadRowError) as err:
        data.read()
    assert str(err.value) == f"{data.meta_path}:3: {reason}"


def test_skip_counts_both_files_and_keeps_the_good_rows_in_order(tmp_path):
    reviews = [review(user=f"U{n}", time=1000 + n) for n in range(6)]
    reviews = reviews[:2] + ["{not json"] + reviews[2:4] + [review(overall=None)] + reviews[4:]
    meta = [repr(META[0]), "{'asin': }", json.dumps(META[1]), repr(META[0])]
    table, bad = books(tmp_path, reviews, meta, bad_rows="skip").read()
    assert table.column("reviewerID").to_pylist() == [f"U{n}" for n in range(6)]
    assert table.column("category").to_pylist() == ["Hymns"] * 6
    assert bad.count == 4
    assert [n for n, _ in bad.examples] == [3, 6, 2, 4]
    assert bad.examples[1] == (6, "reviews_Books_5.json: field overall missing, expected a rating number")
    assert bad.examples[3] == (4, "meta_Books.json: asin '0000013714' already listed above")


def test_needs_a_folder_with_both_files(tmp_path):
    with pytest.raises(ValueError, match="dataset.path is not set"):
        AmazonBooks(None)
    write(tmp_path / "reviews_Books_5.json", [review()])
    with pytest.raises(FileNotFoundError, match=r"meta file \(dataset.meta\) .*meta_Books.json not found"):
        AmazonBooks(str(tmp_path)).read()


@pytest.mark.parametrize("meta_format", ["literal", "json"])
def test_planted_twin_is_five_core_in_the_published_formats(tmp_path, meta_format):
    data = SyntheticAmazonBooks(rows=3000, seed=0, dir=str(tmp_path), meta_format=meta_format)
    data.prepare()
    first_meta = data.meta_path.read_text().splitlines()[0]
    assert first_meta.startswith("{'asin'" if meta_format == "literal" else '{"asin"')
    table, bad = data.read()
    assert bad.count == 0 and table.num_rows == 3000
    users = table.column("reviewerID").to_pandas()
    assert users.value_counts().min() >= 5
    times = table.column("unixReviewTime").cast("int64").to_pandas()
    assert times.groupby(users).apply(lambda t: t.is_monotonic_increasing).all()
    assert 0 < table.column("category").null_count < table.num_rows  # some items have no categories
    assert data.planted_keys == ("reviewerID", "asin") and data.planted_probability() is None


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    data = SyntheticAmazonBooks(rows=4000, seed=0, dir=str(tmp_path_factory.mktemp("amazon")))
    table, _ = data.read()
    return data, table, data.truth()


def pair_probability(truth: dict, row: int, asin: str, negatives: int = 1) -> float:
    """The planted pair probability written out from the generator's truth, one pair at a time."""
    item = list(truth["asins"]).index(asin)
    interest = truth["row_interest"][row]  # the reviewer's true interest when writing review `row`
    share = LOYALTY * (truth["item_category"][item] == interest) + (1 - LOYALTY) / len(truth["categories"])
    p = share * truth["within"][item]
    items = len(set(truth["row_item"].tolist()))
    return p / (p + negatives * (1 - p) / (items - 1))


def test_planted_scores_reviews_and_negatives_from_the_true_interest(twin):
    data, table, truth = twin
    rows = [0, 0, 7, 7, 1234, 3999]
    subs = [0, 1, 0, 1, 0, 0]
    asins = table.column("asin").to_pylist()
    negative = {1: truth["asins"][5], 3: asins[1234]}  # any item, even one another user reviewed
    values = [negative.get(k, asins[r]) for k, r in enumerate(rows)]
    keys = keys_table(table, data.planted_keys, rows, subs, {"asin": values})
    got = data.planted(keys)
    assert got.dtype == np.float64 and got.shape == (6,)
    assert got == pytest.approx([pair_probability(truth, r, a) for r, a in zip(rows, values, strict=True)])
    # the truth is the reviews': each review's category is its writer's interest of the moment mostly
    assert (truth["item_category"][truth["row_item"]] == truth["row_interest"]).mean() == pytest.approx(
        LOYALTY + (1 - LOYALTY) / len(truth["categories"]), abs=0.03
    )
    # two negatives per review: the same p weighed against twice the chance of a negative
    keys = keys_table(
        table, data.planted_keys, [7, 7, 7], [0, 1, 2], {"asin": [asins[7], asins[1234], asins[9]]}
    )
    assert data.planted(keys) == pytest.approx(
        [pair_probability(truth, 7, a, 2) for a in [asins[7], asins[1234], asins[9]]]
    )


def test_planted_refuses_keys_it_cannot_map(twin):
    data, table, _ = twin
    good = keys_table(table, data.planted_keys, [3, 4])
    with pytest.raises(ValueError, match=r"keys row 1 has __row=4000, but the twin wrote 4000 rows"):
        data.planted(
            keys_table(table, data.planted_keys, [3, 3999]).set_column(0, "__row", pa.array([3, 4000]))
        )
    with pytest.raises(
        ValueError, match=r"keys row 0 has __key_asin='B000000000', which the twin never wrote"
    ):
        data.planted(good.set_column(3, "__key_asin", pa.array(["B000000000", "B000000000"])))
    user = table.column("reviewerID")[3].as_py()
    other = next(u for u in table.column("reviewerID").to_pylist() if u != user)
    with pytest.raises(
        ValueError,
        match=rf"keys row 0 says __key_reviewerID='{other}', but input row 3 has reviewerID='{user}'",
    ):
        data.planted(good.set_column(2, "__key_reviewerID", pa.array([other, user])))
    asins = table.column("asin").to_pylist()
    wrong = next(a for a in asins if a != asins[4])
    with pytest.raises(ValueError, match=r"keys row 1 is input row 4 itself \(__sub=0\) but says __key_asin"):
        data.planted(good.set_column(3, "__key_asin", pa.array([asins[3], wrong])))
    with pytest.raises(ValueError, match=r"the keys table has no __key_asin column"):
        data.planted(good.drop_columns(["__key_asin"]))
    with pytest.raises(ValueError, match=r"keys row 1 has a null __row"):
        data.planted(good.set_column(0, "__row", pa.array([3, None], pa.int64())))


def test_interests_drift_so_the_current_one_beats_the_favourite(twin):
    """The planted signal DIEN is for: a score from the true interest of the moment ranks real reviews
    above uniform negatives clearly better than one from the user's overall favourite category, and the
    category of the user's previous review (what a history shows) beats the favourite on later reviews."""
    data, table, truth = twin
    n = table.num_rows
    user, item = truth["row_user"], truth["row_item"]
    category = truth["item_category"][item]
    favourite = pd.Series(category).groupby(user).agg(lambda c: c.value_counts().index[0]).to_numpy()[user]
    first = np.r_[True, user[1:] != user[:-1]]
    previous = np.where(first, favourite, np.r_[-1, category[:-1]])
    assert (pd.Series(truth["row_interest"]).groupby(user).nunique() > 1).mean() > 0.5  # most users drift

    negatives = np.random.default_rng(1).integers(0, len(truth["asins"]), n)
    items, label = np.r_[item, negatives], np.r_[np.ones(n), np.zeros(n)]
    both = np.r_[np.arange(n), np.arange(n)]
    keys = keys_table(
        table, data.planted_keys, both, np.r_[np.zeros(n), np.ones(n)], {"asin": truth["asins"][items]}
    )
    planted = data.planted(keys)

    def auc(interest: np.ndarray, rows: np.ndarray) -> float:
        score = data.item_probability(items, interest[both], truth)
        return roc_auc_score(label[rows[both]], score[rows[both]])

    every = np.ones(n, bool)
    assert roc_auc_score(label, planted) == pytest.approx(
        auc(truth["row_interest"], every)
    )  # p(item | interest)
    assert roc_auc_score(label, planted) > auc(favourite, every) + 0.05
    position = np.arange(n) - np.maximum.accumulate(np.where(first, np.arange(n), 0))
    late = position >= 0.8 * np.bincount(user)[user]  # each user's last fifth: the time split's test rows
    assert auc(previous, late) > auc(favourite, late) + 0.03


@pytest.mark.parametrize("categories", [[None], [["Books", None]]])
def test_a_null_category_in_strict_json_meta_is_a_bad_line_too(tmp_path, categories):
    lines = [json.dumps(META[0]), json.dumps(META[1]), json.dumps({"asin": "0001", "categories": categories})]
    data = books(tmp_path, [review()], lines)
    with pytest.raises(
        BadRowError, match=rf"{data.meta_path.name}:3: field categories expected lists of strings"
    ):
        data.read()
