"""MovieLens readers on files in the three published layouts, broken files, and the planted twin."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

from bluewhale.dataset.badrows import BadRowError
from bluewhale.dataset.movielens import MovieLens
from bluewhale.dataset.planted import keys_table, sigmoid
from bluewhale.dataset.synthetic_movielens import LOYALTY, MATCH, NOISE_SCALE, SyntheticMovieLens

RATINGS = [
    (196, 242, 3, 881250949),
    (186, 302, 3, 891717742),
    (22, 377, 1, 878887116),
    (244, 51, 5, 880606923),
]


def write(folder: Path, name: str, lines: list[str], header: str | None = None) -> Path:
    path = folder / name
    path.write_text("\n".join(([header] if header else []) + lines) + "\n")
    return path


def layout(variant: str, rows=RATINGS) -> tuple[str, list[str], str | None]:
    if variant == "ml-100k":
        return "u.data", ["\t".join(map(str, r)) for r in rows], None
    if variant == "ml-1m":
        return "ratings.dat", ["::".join(map(str, r)) for r in rows], None
    return "ratings.csv", [f"{u},{i},{r:.1f},{t}" for u, i, r, t in rows], "userId,movieId,rating,timestamp"


@pytest.mark.parametrize("variant", ["ml-100k", "ml-1m", "ml-25m"])
def test_each_published_layout_reads_into_the_same_table(tmp_path, variant):
    name, lines, header = layout(variant)
    data = MovieLens(str(write(tmp_path, name, lines, header)))
    assert data.variant == variant  # told by the file name
    table, bad = data.read()
    assert bad.count == 0
    assert table.column("user_id").to_pylist() == [r[0] for r in RATINGS]
    assert table.column("item_id").to_pylist() == [r[1] for r in RATINGS]
    assert table.column("rating").to_pylist() == [3.0, 3.0, 1.0, 5.0]
    assert table.column("timestamp").cast("int64").to_pylist() == [r[3] for r in RATINGS]
    assert table.column("label").to_pylist() == [0, 0, 0, 1]


def test_ml_10m_half_stars_in_ratings_dat(tmp_path):
    table, _ = MovieLens(
        str(write(tmp_path, "ratings.dat", ["1::122::3.5::838985046", "1::185::5::838983525"]))
    ).read()
    assert table.column("rating").to_pylist() == [3.5, 5.0] and table.column("label").to_pylist() == [0, 1]


def test_half_stars_and_an_explicit_variant(tmp_path):
    path = write(
        tmp_path,
        "my_ratings.csv",
        ["1,2,3.5,100", "1,3,4.5,101", "2,2,0.5,99"],
        "userId,movieId,rating,timestamp",
    )
    with pytest.raises(ValueError, match="cannot tell the MovieLens variant.*dataset.variant"):
        MovieLens(str(path))
    table, _ = MovieLens(str(path), variant="ml-25m", positive_rating=3.5).read()
    assert table.column("rating").to_pylist() == [3.5, 4.5, 0.5]
    assert table.column("label").to_pylist() == [1, 1, 0]


@pytest.mark.parametrize(
    "variant, broken, reason",
    [
        ("ml-100k", "196\t242\t3", "expected 4 fields, got 3"),  # truncated
        ("ml-100k", "196\t242\t3\t881250949\t7", "expected 4 fields, got 5"),
        ("ml-100k", "196\tabc\t3\t881250949", "field item_id expected an integer item id, got 'abc'"),
        ("ml-100k", "196\t242\t6\t881250949", "field rating expected a whole rating 1-5, got '6'"),
        ("ml-100k", "", "empty line"),
        ("ml-1m", "1::1193::5", "expected 7 ':'-separated parts (4 fields joined by '::'), got 5"),
        ("ml-1m", "1:x:1193::5::978300760", "field _1 expected '::' between fields, got 'x'"),
        ("ml-1m", "1::1193::5::97830076O", "field timestamp expected integer seconds, got '97830076O'"),
        (
            "ml-1m",
            f"{'9' * 19}::1193::5::978300760",
            f"field user_id expected an integer user id, got '{'9' * 19}'",
        ),
        ("ml-25m", "1,296,5.5,1147880044", "field rating expected a rating 0.5-5 in steps of 0.5, got '5.5'"),
        ("ml-25m", "1,296,,1147880044", "field rating expected a rating 0.5-5 in steps of 0.5, got None"),
    ],
)
def test_error_names_file_line_and_reason(tmp_path, variant, broken, reason):
    name, lines, header = layout(variant)
    path = write(tmp_path, name, [lines[0], lines[1], broken, lines[2]], header)
    with pytest.raises(BadRowError) as err:
        MovieLens(str(path)).read()
    assert str(err.value) == f"{path}:{3 + (header is not None)}: {reason}"


def test_a_wrong_header_is_an_error_on_line_1(tmp_path):
    path = write(tmp_path, "ratings.csv", ["1,2,3.0,4"], "user,movie,rating,timestamp")
    with pytest.raises(
        BadRowError, match=r"ratings.csv:1: expected the header 'userId,movieId,rating,timestamp'"
    ):
        MovieLens(str(path)).read()


def test_skip_counts_and_keeps_every_good_row_in_order(tmp_path):
    good = [f"{u}::{u + 100}::{1 + u % 5}::{1000 + u}" for u in range(1, 11)]
    lines = good[:3] + ["4::5"] + good[3:6] + ["x::1::1::1", ""] + good[6:] + ["9::9::0::9"]
    table, bad = MovieLens(str(write(tmp_path, "ratings.dat", lines)), bad_rows="skip").read()
    assert table.column("user_id").to_pylist() == list(range(1, 11))
    assert bad.count == 4
    assert [n for n, _ in bad.examples] == [4, 8, 9, 14]
    assert "user_id expected an integer user id, got 'x'" in dict(bad.examples)[8]
    assert dict(bad.examples)[9] == "ratings.dat: empty line"


def test_needs_a_path_and_an_existing_file(tmp_path):
    with pytest.raises(ValueError, match="dataset.path is not set"):
        MovieLens(None)
    with pytest.raises(FileNotFoundError, match="ratings file .*u.data not found"):
        MovieLens(str(tmp_path / "u.data")).read()
    with pytest.raises(ValueError, match="dataset.bad_rows must be 'error' or 'skip'"):
        MovieLens(str(tmp_path / "u.data"), bad_rows="drop")


@pytest.mark.parametrize("variant", ["ml-100k", "ml-1m", "ml-25m"])
def test_planted_twin_writes_the_layout_and_a_known_signal(tmp_path, variant):
    data = SyntheticMovieLens(rows=20_000, seed=0, dir=str(tmp_path), variant=variant)
    table, bad = data.read()
    assert data.path.name == {"ml-100k": "u.data", "ml-1m": "ratings.dat", "ml-25m": "ratings.csv"}[variant]
    assert bad.count == 0 and table.num_rows == 20_000
    label, planted = table.column("label").to_numpy(), data.planted_probability()
    assert abs(label.mean() - planted.mean()) < 0.02  # the planted probabilities are calibrated
    assert 0.75 < roc_auc_score(label, planted) < 0.9
    again = SyntheticMovieLens(rows=20_000, seed=0, dir=str(tmp_path / "again"), variant=variant)
    again.prepare()
    assert again.path.read_bytes() == data.path.read_bytes()
    assert np.array_equal(again.planted_probability(), planted)


@pytest.mark.parametrize("variant", ["ml-100k", "ml-1m"])
def test_planted_keys_find_each_rows_truth(tmp_path, variant):
    data = SyntheticMovieLens(rows=2000, seed=1, dir=str(tmp_path), variant=variant)
    table, _ = data.read()
    assert data.planted_keys == ("user_id", "item_id")
    rows = [1999, 0, 17, 17, 1000]
    got = data.planted(keys_table(table, data.planted_keys, rows))
    assert got.dtype == np.float64 and got.shape == (5,)
    assert got == pytest.approx(data.planted_probability()[rows].astype(np.float64))
    # the keys check the rows: the user and item each row was written with
    truth = data.truth()
    assert truth["user_id"].tolist() == table.column("user_id").to_pylist()
    assert truth["item_id"].tolist() == table.column("item_id").to_pylist()
    assert data.planted(keys_table(table, [], rows)) == pytest.approx(got)  # keys are optional checks

    good = keys_table(table, data.planted_keys, [3, 4])
    with pytest.raises(ValueError, match=r"keys row 1 has __row=2000, but the twin wrote 2000 rows"):
        data.planted(good.set_column(0, "__row", pa.array([3, 2000], pa.int64())))
    with pytest.raises(ValueError, match=r"keys row 1 has __row=-1"):
        data.planted(good.set_column(0, "__row", pa.array([3, -1], pa.int64())))
    with pytest.raises(
        ValueError, match=r"keys row 0 is negative sample 1 \(__sub=1\) of input row 3; .*not for negatives"
    ):
        data.planted(good.set_column(1, "__sub", pa.array([1, 0], pa.int32())))
    item = table.column("item_id")[4].as_py()
    with pytest.raises(
        ValueError, match=rf"keys row 1 says __key_item_id={item + 1}, but input row 4 has item_id={item}"
    ):
        data.planted(
            good.set_column(3, "__key_item_id", pa.array([table.column("item_id")[3].as_py(), item + 1]))
        )
    with pytest.raises(ValueError, match=r"the keys table has no __sub column"):
        data.planted(good.drop_columns(["__sub"]))


def test_taste_drifts_so_the_recent_history_beats_the_static_user(tmp_path):
    """The planted signal a sequential model is for: the user's taste of the moment (a genre) lifts
    ratings, so P(label) from the true taste beats the same model with the taste replaced by the user's
    overall genre mix, and so does one that guesses the taste from the genres of the last 3 ratings."""
    data = SyntheticMovieLens(rows=20_000, seed=0, dir=str(tmp_path))
    table, _ = data.read()
    label, truth = table.column("label").to_numpy(), data.truth()
    frame = pd.DataFrame({"user": truth["user_id"], "genre": truth["genre"], "taste": truth["taste"]})
    assert (frame.groupby("user")["taste"].nunique() > 1).mean() > 0.3  # tastes drift
    assert (frame["genre"] == frame["taste"]).mean() == pytest.approx(LOYALTY, abs=0.05)

    def probability(match: np.ndarray) -> np.ndarray:
        return sigmoid(
            (truth["static_score"] + MATCH * np.asarray(match, float) - truth["cut"]) / NOISE_SCALE
        )

    assert np.allclose(probability(frame["genre"] == frame["taste"]), truth["probability"])
    share = frame.groupby(["user", "genre"])["genre"].transform("size") / frame.groupby("user")[
        "genre"
    ].transform("size")
    static = np.where(frame["genre"] < 0, 0, share)  # the user's share of ratings in the item's genre
    earlier = [frame.groupby("user")["genre"].shift(k) for k in (1, 2, 3)]  # rows are in time order
    recent = pd.concat([(e == frame["genre"]).where(e.notna()) for e in earlier], axis=1).mean(axis=1)
    recent = np.where(recent.isna(), static, recent.to_numpy(float, na_value=np.nan))
    true, by_user, by_history = (
        roc_auc_score(label, p) for p in (truth["probability"], probability(static), probability(recent))
    )
    assert true > by_user + 0.05
    assert by_history > by_user + 0.015


ITEMS = {  # a few lines of each published item file, with the quirks each has
    "ml-100k": (
        "u.item",
        [
            "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0",
            "267|unknown||||1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0",
            "1305|Ça commence aujourd'hui (1999)|01-Jan-1999||http://us.imdb.com|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0",
        ],
        None,
    ),
    "ml-1m": (
        "movies.dat",
        [
            "1::Toy Story (1995)::Animation|Children's|Comedy",
            "260::Star Wars: Episode IV - A New Hope (1977)::Action|Adventure|Fantasy|Sci-Fi",
            "1305::Ça commence aujourd'hui (1999)::Drama",
        ],
        None,
    ),
    "ml-25m": (
        "movies.csv",
        [
            "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy",
            '11,"American President, The (1995)",Comedy|Drama|Romance',
            '208793,"The ""Real"" Thing (2019)",(no genres listed)',
        ],
        "movieId,title,genres",
    ),
}
ITEM_TABLES = {
    "ml-100k": (
        [1, 267, 1305],
        ["Toy Story (1995)", "unknown", "Ça commence aujourd'hui (1999)"],
        [["Animation", "Children's", "Comedy"], ["unknown"], ["Drama"]],
    ),
    "ml-1m": (
        [1, 260, 1305],
        ["Toy Story (1995)", "Star Wars: Episode IV - A New Hope (1977)", "Ça commence aujourd'hui (1999)"],
        [["Animation", "Children's", "Comedy"], ["Action", "Adventure", "Fantasy", "Sci-Fi"], ["Drama"]],
    ),
    "ml-25m": (
        [1, 11, 208793],
        ["Toy Story (1995)", "American President, The (1995)", 'The "Real" Thing (2019)'],
        [["Adventure", "Animation", "Children", "Comedy", "Fantasy"], ["Comedy", "Drama", "Romance"], []],
    ),
}


def write_items(folder: Path, variant: str, lines: list[str]) -> None:
    name, _, header = ITEMS[variant]
    encoding = "utf8" if variant == "ml-25m" else "latin1"  # as MovieLens published them
    (folder / name).write_text("\n".join(([header] if header else []) + lines) + "\n", encoding=encoding)


@pytest.mark.parametrize("variant", ["ml-100k", "ml-1m", "ml-25m"])
def test_item_files_are_a_side_table_with_genres(tmp_path, variant):
    name, lines, header = layout(variant)
    data = MovieLens(str(write(tmp_path, name, lines, header)))
    assert data.side_tables() == {}  # the item file is optional
    write_items(tmp_path, variant, ITEMS[variant][1])
    data = MovieLens(str(tmp_path / name))
    items = data.side_tables()["items"]
    ids, titles, genres = ITEM_TABLES[variant]
    assert items.column("item_id").to_pylist() == ids
    assert items.column("title").to_pylist() == titles
    assert items.column("genres").to_pylist() == genres
    assert items.column("genre").to_pylist() == [g[0] if g else None for g in genres]


@pytest.mark.parametrize(
    "variant, broken, reason",
    [
        (
            "ml-100k",
            "5|Copycat (1995)|01-Jan-1995||url|0|0|0|0|0|0|1|0|1|0|0|0|0|0|0|0|1|0",
            "expected 24 fields, got 23",
        ),
        (
            "ml-100k",
            "5|Copycat (1995)|01-Jan-1995||url|0|0|0|0|0|0|1|0|1|0|0|0|0|0|0|0|1|0|2",
            "field g18 expected a genre flag 0 or 1, got '2'",
        ),
        ("ml-1m", "5::Copycat (1995)", "expected 3 fields joined by '::', got 2"),
        ("ml-1m", "x5::Copycat (1995)::Crime", "field item_id expected an integer item id, got 'x5'"),
        (
            "ml-1m",
            f"{'5' * 19}::Copycat (1995)::Crime",
            f"field item_id expected an integer item id, got '{'5' * 19}'",
        ),
        ("ml-25m", "5,Copycat (1995)", "expected 3 comma-separated fields, got 2"),
        ("ml-25m", '5,"Copycat, (1995),Crime', "expected 3 comma-separated fields, got unbalanced quotes"),
    ],
)
def test_bad_item_lines_are_named_and_counted(tmp_path, variant, broken, reason):
    name, lines, header = layout(variant)
    write(tmp_path, name, lines, header)
    good = ITEMS[variant][1]
    write_items(tmp_path, variant, [good[0], broken, good[1]])
    items_path = tmp_path / ITEMS[variant][0]
    with pytest.raises(BadRowError) as err:
        MovieLens(str(tmp_path / name)).read()
    assert str(err.value).startswith(f"{items_path}:{2 + (header is not None)}: {reason}")
    data = MovieLens(str(tmp_path / name), bad_rows="skip")
    table, bad = data.read()
    assert table.num_rows == len(RATINGS) and bad.count == 1
    assert data.side_tables()["items"].column("item_id").to_pylist() == ITEM_TABLES[variant][0][:2]
