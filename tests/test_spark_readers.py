"""Spark's native readers give the table each data set's own `read()` gives, row for row, with the same
bad-row errors and counts; the Spark engine then writes the same parquet as pandas, and the rows never
pass through the driver (the driver fallback's warning is not logged)."""

import json
import logging
from pathlib import Path

import pytest
import yaml

from bluewhale.dataset.amazon_books import AmazonBooks
from bluewhale.dataset.badrows import BadRowError
from bluewhale.dataset.criteo import CriteoFile
from bluewhale.dataset.criteo_1tb import CriteoDays
from bluewhale.dataset.movielens import MovieLens
from bluewhale.dataset.outbrain import Outbrain
from bluewhale.dataset.synthetic_amazon_books import SyntheticAmazonBooks
from bluewhale.dataset.synthetic_criteo_1tb import SyntheticCriteo1TB
from bluewhale.dataset.synthetic_movielens import SyntheticMovieLens
from bluewhale.dataset.synthetic_outbrain import SyntheticOutbrain
from bluewhale.dataset.synthetic_twitter import SyntheticTwitterRecSys2021
from bluewhale.dataset.twitter import TwitterRecSys2021
from bluewhale.engine import ROW
from bluewhale.engine.pandas import PandasEngine
from bluewhale.engine.spark import SparkEngine
from bluewhale.engine.spark_readers import read_input, read_side_tables
from bluewhale.recdp.ops import Split
from tests import test_dataset_amazon_books as amazon_samples
from tests import test_dataset_movielens as movielens_samples
from tests import test_dataset_outbrain as outbrain_samples
from tests import test_dataset_twitter as twitter_samples
from tests.test_engines import SPARK_CONF, assert_same_tables, broken_criteo, outputs

pytestmark = pytest.mark.slow
CONF = Path(__file__).resolve().parent.parent / "conf"
SPLIT = Split(by="position", test_fraction=0.2)
FALLBACK = "no native reader"


@pytest.fixture(scope="module")
def spark():
    """One local[2] engine; small input splits so every file here spans several Spark partitions."""
    return SparkEngine(master="local[2]", conf=SPARK_CONF)


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    folder = tmp_path_factory.mktemp("twins")
    return {
        "movielens-100k": SyntheticMovieLens(3000, 1, str(folder / "ml100k"), variant="ml-100k"),
        "movielens-1m": SyntheticMovieLens(3000, 1, str(folder / "ml1m"), variant="ml-1m"),
        "movielens-25m": SyntheticMovieLens(3000, 1, str(folder / "ml25m"), variant="ml-25m"),
        "twitter": SyntheticTwitterRecSys2021(2000, 1, str(folder / "twitter")),
        "amazon-literal": SyntheticAmazonBooks(2000, 1, str(folder / "amazon"), meta_format="literal"),
        "amazon-json": SyntheticAmazonBooks(2000, 1, str(folder / "amazon"), meta_format="json"),
        "outbrain": SyntheticOutbrain(3000, 1, str(folder / "outbrain")),
        "criteo-1tb": SyntheticCriteo1TB(rows=3000, seed=1, dir=str(folder / "criteo"), days=3),
    }


def spark_read(spark: SparkEngine, data, scratch: Path):
    """(the table Spark reads, in row order without hidden columns, as pandas; its bad-row report).

    The planted keys Spark carries are checked to be raw copies of their columns first."""
    df, kept, bad = read_input(spark.session(), data, SPLIT, scratch)
    table = df.toPandas().sort_values(ROW).reset_index(drop=True)
    assert table[ROW].tolist() == list(range(kept))  # positions among kept rows, no gaps
    for c in getattr(data, "planted_keys", ()):
        assert_same_tables({c: table[[c]]}, {c: table[[f"__key_{c}"]].set_axis([c], axis=1)})
    return table.drop(columns=[c for c in table.columns if c.startswith("__")]), bad


def assert_same_read(spark: SparkEngine, data, scratch: Path) -> dict:
    """Spark's read of `data` is `data.read()`: columns, dtypes, rows in order, bad-row report."""
    want, report = data.read()
    got, bad = spark_read(spark, data, scratch)
    expected = want.to_pandas()
    assert dict(got.dtypes) == dict(expected.dtypes)
    assert_same_tables({"read": expected}, {"read": got})
    assert bad == {"count": report.count, "examples": report.examples}
    return bad


def assert_same_error(spark: SparkEngine, data, scratch: Path) -> str:
    """Both readers stop at the same bad line with the same `file:line: reason`."""
    with pytest.raises(BadRowError) as pandas_error:
        data.read()
    with pytest.raises(BadRowError) as spark_error:
        read_input(spark.session(), data, SPLIT, scratch)
    assert str(spark_error.value) == str(pandas_error.value)
    return str(spark_error.value)


@pytest.mark.parametrize(
    "twin",
    [
        "movielens-100k",
        "movielens-1m",
        "movielens-25m",
        "twitter",
        "amazon-literal",
        "amazon-json",
        "outbrain",
        "criteo-1tb",
    ],
)
def test_spark_reads_each_twin_as_its_own_reader_does(spark, twins, twin, tmp_path, caplog):
    data = twins[twin]
    with caplog.at_level(logging.INFO, logger="bluewhale.engine.spark_readers"):
        assert assert_same_read(spark, data, tmp_path)["count"] == 0
        sides = read_side_tables(spark.session(), data, tmp_path)
    assert FALLBACK not in caplog.text  # the rows were never read on the driver
    assert set(sides) == set(data.side_tables())
    for name, side in sides.items():
        want = data.side_tables()[name].to_pandas()
        got = side.toPandas()
        assert dict(got.dtypes) == dict(want.dtypes), name
        sort = list(want.columns[:2])  # a side table's rows have no order: compare them sorted
        assert_same_tables(
            {name: want.sort_values(sort).reset_index(drop=True)},
            {name: got.sort_values(sort).reset_index(drop=True)},
        )


# --- broken files: the bad lines of the pandas readers' own tests, among enough good lines to span
# several Spark partitions (so line numbers are counted across them)

MOVIELENS_BROKEN = {
    "ml-100k": {3: "196\t242\t3", 2500: "196\tabc\t3\t881250949", 4000: "", 5999: "196\t242\t6\t881250949"},
    "ml-1m": {1717: "1::1193::5", 3000: "1:x:1193::5::978300760", 4500: "1::1193::5::97830076O"},
    "ml-25m": {2: "1,296,5.5,1147880044", 3333: "1,296,,1147880044", 5000: "196\t242\t3\t881250949"},
}


def broken_movielens(folder: Path, variant: str, bad_rows: str, rows: int = 6000) -> MovieLens:
    folder.mkdir(exist_ok=True)
    ratings = [(1 + k % 97, 1 + k % 301, 1 + k % 5, 880_000_000 + k) for k in range(rows)]
    name, lines, header = movielens_samples.layout(variant, ratings)
    offset = header is not None  # lines are numbered in the file, header included
    for line, text in MOVIELENS_BROKEN[variant].items():
        lines[line - 1 - offset] = text
    movielens_samples.write(folder, name, lines, header)
    good = movielens_samples.ITEMS[variant][1]
    broken_items = {
        "ml-100k": "5|Copycat (1995)|",
        "ml-1m": f"{'5' * 19}::Copycat (1995)::Crime",  # too long for int64
        "ml-25m": "5,Copycat",
    }
    movielens_samples.write_items(folder, variant, [good[0], broken_items[variant], good[1]])
    return MovieLens(str(folder / name), bad_rows=bad_rows)


@pytest.mark.parametrize("variant", ["ml-100k", "ml-1m", "ml-25m"])
def test_broken_movielens_gives_the_same_error_and_skips(spark, variant, tmp_path):
    data = broken_movielens(tmp_path / "data", variant, "error")
    first = min(MOVIELENS_BROKEN[variant])
    assert f"{data.path}:{first}: " in assert_same_error(spark, data, tmp_path / "error")
    data = broken_movielens(tmp_path / "data", variant, "skip")
    bad = assert_same_read(spark, data, tmp_path / "skip")
    assert bad["count"] == len(MOVIELENS_BROKEN[variant]) + 1  # and the item file's bad line
    assert [line for line, _ in bad["examples"]][: len(MOVIELENS_BROKEN[variant])] == sorted(
        MOVIELENS_BROKEN[variant]
    )
    movielens_samples.write(tmp_path / "data", data.path.name, data.path.read_text().splitlines()[:1])
    data = MovieLens(str(data.path))  # good ratings: the item list's bad line is the error
    line = 2 + (variant == "ml-25m")  # movies.csv has a header
    assert f"{data.items_path}:{line}: " in assert_same_error(spark, data, tmp_path / "items")


@pytest.mark.parametrize("variant", ["ml-100k", "ml-1m"])
def test_latin1_item_lists_are_decoded_by_spark(spark, variant, tmp_path, caplog):
    name, lines, header = movielens_samples.layout(variant)
    movielens_samples.write(tmp_path, name, lines, header)
    movielens_samples.write_items(tmp_path, variant, movielens_samples.ITEMS[variant][1])  # Ç, ':' in titles
    with caplog.at_level(logging.INFO, logger="bluewhale.engine.spark_readers"):
        items = read_side_tables(spark.session(), MovieLens(str(tmp_path / name)), tmp_path / "s")["items"]
    assert "read on the driver" not in caplog.text
    got = items.toPandas().sort_values("item_id")
    ids, titles, genres = movielens_samples.ITEM_TABLES[variant]
    assert got["item_id"].tolist() == ids and got["title"].tolist() == titles
    assert [list(g) for g in got["genres"]] == genres
    assert got["genre"].tolist() == [g[0] if g else None for g in genres]


def test_a_wrong_csv_header_is_line_1_and_leaves_no_rows(spark, tmp_path):
    path = movielens_samples.write(
        tmp_path, "ratings.csv", ["1,2,3.0,4", "1,3,4.0,5"], "user,movie,rating,timestamp"
    )
    assert "ratings.csv:1: expected the header" in assert_same_error(
        spark, MovieLens(str(path)), tmp_path / "e"
    )
    data = MovieLens(str(path), bad_rows="skip")
    with pytest.raises(ValueError, match="leaves an empty split of 0 rows"):  # nothing to split
        read_input(spark.session(), data, SPLIT, tmp_path / "s")


def broken_twitter(folder: Path, bad_rows: str) -> TwitterRecSys2021:
    line = twitter_samples.line
    good = [
        line(engaging_user_follower_count=str(n), tweet_timestamp=str(1612396800 + n)) for n in range(600)
    ]
    first = good[:400]
    first[2] = line(tweet_type="Thread")
    first[199] = line()[:100]
    first[350] = line(text_tokens="101\t\t102")
    second = good[400:]
    second[0] = line()[:50]
    second[150] = line(like_timestamp="yes")
    twitter_samples.write(folder / "part-00000", first)
    twitter_samples.write(folder / "part-00001", second)
    (folder / "_SUCCESS").write_text("")
    return TwitterRecSys2021(str(folder), bad_rows=bad_rows)


def test_broken_twitter_parts_give_the_same_error_and_skips(spark, tmp_path):
    (tmp_path / "parts").mkdir()
    data = broken_twitter(tmp_path / "parts", "error")
    assert "part-00000:3: field tweet_type expected one of" in assert_same_error(spark, data, tmp_path / "e")
    bad = assert_same_read(spark, broken_twitter(tmp_path / "parts", "skip"), tmp_path / "s")
    assert bad["count"] == 5
    assert [line for line, _ in bad["examples"]] == [3, 200, 351, 1, 151]
    assert bad["examples"][3] == (1, "part-00001: expected 24 \\x01-separated fields, got 3")


@pytest.mark.parametrize("delimiter", ["\t", "::", "|"])
def test_a_line_is_bad_when_its_field_count_is_wrong_or_all_its_fields_are_empty(spark, delimiter):
    """The shape checks on the whole line flag exactly the lines whose split has another number of fields,
    or whose fields are all empty (a run of ':' is split leftmost first, as Java's split does)."""
    from bluewhale.engine.spark_readers.lines import delimited

    d = delimiter
    lines = ["", d, d * 2, f"a{d}b{d}c", f"a{d}{d}", f"{d}{d}c", f"a{d}b", f"a{d}b{d}c{d}", f"a{d}b{d}c{d}d"]
    lines += ["a:::b::c", "a::::b", "abc"]
    session = spark.session()  # column expressions need a running session
    fmt = delimited(["x", "y", "z"], {}, delimiter, {}, reason=str)
    flags = session.createDataFrame([(line,) for line in lines], "value string").select(fmt.bad).collect()
    expected = [len(line.split(d)) != 3 or not any(line.split(d)) for line in lines]
    assert [row[0] for row in flags] == expected


def test_a_line_longer_than_a_spark_split_keeps_the_numbering(spark, tmp_path):
    line = twitter_samples.line
    lines = [line(engaging_user_follower_count=str(n)) for n in range(300)]
    lines[100] = line(text_tokens="\t".join(["101"] * 60_000))  # ~240 KB: splits with no line start
    lines[250] = line(tweet_type="Thread")
    data = TwitterRecSys2021(str(twitter_samples.write(tmp_path / "part-00000", lines)), bad_rows="skip")
    assert assert_same_read(spark, data, tmp_path / "s")["examples"][0][0] == 251


def broken_amazon(folder: Path, bad_rows: str) -> AmazonBooks:
    review = amazon_samples.review
    reviews = [
        review(user=f"U{n % 40}", asin=["0000013714", "0000031909", "B0"][n % 3], time=1000 + n)
        for n in range(700)
    ]
    broken = [
        review()[:80],
        review().replace('"unixReviewTime"', '"time"'),
        review(overall="5.0"),
        review(time=1252800000.5),
        "[1, 2]",
        "",
        review(user=7),
    ]
    for k, text in enumerate(broken):
        reviews[3 + 97 * k] = text
    meta = [repr(m) for m in amazon_samples.META] + [json.dumps(amazon_samples.META[1])]  # a repeated asin
    return amazon_samples.books(folder, reviews, meta, bad_rows=bad_rows)


def test_broken_amazon_reviews_give_the_same_error_and_skips(spark, tmp_path, caplog):
    data = broken_amazon(tmp_path, "error")
    assert "reviews_Books_5.json:4: expected a JSON object" in assert_same_error(spark, data, tmp_path / "e")
    with caplog.at_level(logging.INFO, logger="bluewhale.engine.spark_readers"):
        bad = assert_same_read(spark, broken_amazon(tmp_path, "skip"), tmp_path / "s")
    assert "Python-literal lines, read on the driver" in caplog.text  # said, since the meta is literals
    assert bad["count"] == 8  # 7 reviews, 1 meta line
    assert [line for line, _ in bad["examples"]] == [4, 101, 198, 295, 392]


def json_meta_amazon(folder: Path, bad_rows: str) -> AmazonBooks:
    meta = [dict(m) for m in amazon_samples.META] + [
        {
            "asin": f"I{n}",
            "title": f"Book {n}",
            "price": n + 0.5,
            "categories": [["Books"], ["Books", f"C{n % 7}"]],
        }
        for n in range(800)
    ]
    meta[4:4] = [{"asin": "0001", "categories": [["Books", 3]]}, {"title": "No asin"}, amazon_samples.META[0]]
    meta[300:300] = [{"asin": "0002", "price": "13"}, {"asin": "0003", "categories": [None]}]
    meta[500:500] = [{"asin": "0004", "categories": []}, {"asin": "0005", "categories": [[]], "price": 3}]
    lines = [json.dumps(m) for m in meta]
    lines[700] = ""
    reviews = [
        amazon_samples.review(asin=a, time=1000 + n) for n, a in enumerate(["0000013714", "I5", "0004"] * 50)
    ]
    return amazon_samples.books(folder, reviews, lines, bad_rows=bad_rows)


def test_json_meta_is_parsed_by_spark_with_the_same_bad_lines(spark, tmp_path, caplog):
    data = json_meta_amazon(tmp_path, "error")
    message = assert_same_error(spark, data, tmp_path / "e")
    assert "meta_Books.json:5: field categories expected lists of strings" in message
    with caplog.at_level(logging.INFO, logger="bluewhale.engine.spark_readers"):
        bad = assert_same_read(spark, json_meta_amazon(tmp_path, "skip"), tmp_path / "s")
    assert "read on the driver" not in caplog.text
    assert bad["count"] == 6
    assert bad["examples"][2] == (7, "meta_Books.json: asin '0000013714' already listed above")


def broken_outbrain(folder: Path, bad_rows: str) -> Outbrain:
    csvs = outbrain_samples.CSVS
    ads = [42337, 139684, 144739, 156824]
    clicks = [csvs["clicks_train.csv"][0]] + [
        f"{1 + n // 4},{ads[n % 4]},{int(n % 4 == 1)}" for n in range(6000)
    ]
    clicks[1500] = "1,139684"
    clicks[4000] = "1,13968x,1"
    clicks[5999] = "1,139684,2"
    events = csvs["events.csv"] + ["2,cb8c55702adb93,379743,61,1,US"]  # display 2 again
    meta = csvs["documents_meta.csv"] + ["1794259,,,2016-06-08"]
    topics = csvs["documents_topics.csv"] + ["1595802,140,high"]
    changes = {"clicks_train.csv": clicks, "events.csv": events, "documents_meta.csv": meta}
    outbrain_samples.write(folder, changes | {"documents_topics.csv": topics})
    return Outbrain(str(folder), bad_rows=bad_rows)


def test_broken_outbrain_gives_the_same_error_and_skips(spark, tmp_path):
    data = broken_outbrain(tmp_path, "error")
    assert "clicks_train.csv:1501: expected 3 fields, got 2" in assert_same_error(spark, data, tmp_path / "e")
    bad = assert_same_read(spark, broken_outbrain(tmp_path, "skip"), tmp_path / "s")
    assert bad["count"] == 6
    assert bad["examples"][3] == (5, "events.csv: display_id 2 already listed above")
    lines = outbrain_samples.CSVS["promoted_content.csv"]
    outbrain_samples.write(tmp_path, {"promoted_content.csv": ["ad_id,doc", *lines[1:]]})
    assert "promoted_content.csv:1: expected the header" in assert_same_error(spark, data, tmp_path / "h")


def test_criteo_empty_lines_and_day_files_count_as_pandas_does(spark, tmp_path):
    bad = {5: "", 1500: "1\t2", 2999: "\t".join(["0", "-", *["1"] * 38])}
    data = CriteoFile(str(broken_criteo(tmp_path / "train.txt", 3000, bad)), bad_rows="skip")
    assert assert_same_read(spark, data, tmp_path / "kaggle")["examples"][0] == (5, "empty line")
    days = tmp_path / "days"
    days.mkdir()
    for day, lines in [(0, {7: "1\t2"}), (1, {}), (2, {1: "", 2999: "x"})]:
        broken_criteo(days / f"day_{day}", 3000, lines)
    report = assert_same_read(spark, CriteoDays(str(days), bad_rows="skip"), tmp_path / "1tb")
    assert report["examples"][:2] == [
        (7, "day_0: expected 40 tab-separated fields, got 2"),
        (1, "day_2: empty line"),
    ]


def test_a_criteo_integer_too_long_for_int64_is_a_bad_row_on_both_engines(spark, tmp_path):
    good = ["1", *["5"] * 13, *["68fd1e64"] * 26]
    lines = {3: "\t".join([good[0], "9" * 19, *good[2:]]), 4: "\t".join([good[0], "-" + "9" * 18, *good[2:]])}
    data = CriteoFile(str(broken_criteo(tmp_path / "train.txt", 300, lines)), bad_rows="skip")
    report = assert_same_read(spark, data, tmp_path / "s")
    assert report["examples"] == [(3, f"field I1 expected an integer of at most 18 digits, got '{'9' * 19}'")]


# --- end to end: the Spark engine on each twin writes the pandas engine's parquet


@pytest.mark.parametrize(
    "twin, recdp",
    [
        ("movielens-1m", "movielens_seq"),
        ("twitter", "twitter_recsys"),
        ("outbrain", "outbrain_wnd"),  # fill_na -1 on ids and on text (geo): "-1" there
        ("amazon-literal", "amazon_dien"),
    ],
)
def test_each_twin_pipeline_is_the_same_on_spark(spark, twins, twin, recdp, tmp_path, caplog):
    name, _, without = recdp.partition(" without ")
    pipeline = yaml.safe_load((CONF / f"recdp/{name}.yaml").read_text())
    pipeline["ops"] = [op for op in pipeline["ops"] if op["op"] != without]
    data = twins[twin]
    expected, want = outputs(data, pipeline, PandasEngine(), tmp_path / "pandas")
    with caplog.at_level(logging.WARNING, logger="bluewhale.engine.spark_readers"):
        processed, got = outputs(data, pipeline, spark, tmp_path / "spark")
    assert FALLBACK not in caplog.text
    assert_same_tables(want, got)
    assert processed.meta["cardinalities"] == expected.meta["cardinalities"]
    assert processed.meta["rows"] == expected.meta["rows"]
