"""Amazon Books reviews + meta (JSON lines and Python-literal lines), broken lines, and the planted twin."""

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bluewhale.dataset.amazon_books import AmazonBooks
from bluewhale.dataset.badrows import BadRowError
from bluewhale.dataset.synthetic_amazon_books import SyntheticAmazonBooks


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
def test_planted_twin_is_five_core_and_its_pair_signal_is_known(tmp_path, meta_format):
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

    items = table.column("asin").to_pylist()
    catalogue = data.side_tables()["meta"].column("asin").to_pylist()
    negatives = [catalogue[k] for k in np.random.default_rng(1).integers(0, len(catalogue), len(items))]
    score = data.planted_pair_probability(users.tolist() * 2, items + negatives)
    assert 0.75 < roc_auc_score([1] * len(items) + [0] * len(items), score) < 0.97


@pytest.mark.parametrize("categories", [[None], [["Books", None]]])
def test_a_null_category_in_strict_json_meta_is_a_bad_line_too(tmp_path, categories):
    lines = [json.dumps(META[0]), json.dumps(META[1]), json.dumps({"asin": "0001", "categories": categories})]
    data = books(tmp_path, [review()], lines)
    with pytest.raises(
        BadRowError, match=rf"{data.meta_path.name}:3: field categories expected lists of strings"
    ):
        data.read()
