"""Outbrain CSVs joined into the Wide & Deep table; broken files; the planted twin's known clicks."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from bluewhale.dataset.badrows import BadRowError
from bluewhale.dataset.outbrain import TIME_OFFSET_MS, Outbrain
from bluewhale.dataset.planted import keys_table
from bluewhale.dataset.synthetic_outbrain import SyntheticOutbrain

CSVS = {
    "clicks_train.csv": [
        "display_id,ad_id,clicked",
        "1,42337,0",
        "1,139684,1",
        "2,144739,1",
        "2,156824,0",
        "3,42337,1",
    ],
    "events.csv": [
        "display_id,uuid,document_id,timestamp,platform,geo_location",
        "2,79a85fa78311b9,1794259,81,2,SG>00",
        "1,cb8c55702adb93,379743,61,3,US>SC>519",
        "3,c1d0b7a1e4da9f,1179111,1295999999,\\N,",
    ],
    "promoted_content.csv": [
        "ad_id,document_id,campaign_id,advertiser_id",
        "42337,938164,5969,1499",
        "139684,1519452,17913,2181",
        "144739,1179111,18488,2538",
        "156824,1793814,19434,2683",
    ],
    "documents_meta.csv": [
        "document_id,source_id,publisher_id,publish_time",
        "379743,1,603,2013-12-18 00:00:00",
        "1794259,,,",
        "938164,5409,,2016-06-08 10:00:00",
    ],
    "documents_topics.csv": [
        "document_id,topic_id,confidence_level",
        "1595802,140,0.0731367",
        "1595802,16,0.0594224",
    ],
}


def write(folder: Path, changes: dict[str, list[str]] | None = None) -> Path:
    for name, lines in (CSVS | (changes or {})).items():
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def test_joins_clicks_with_events_ads_and_both_documents_in_click_order(tmp_path):
    table, bad = Outbrain(str(write(tmp_path))).read()
    assert bad.count == 0
    rows = table.to_pylist()
    assert [(r["display_id"], r["ad_id"], r["clicked"]) for r in rows] == [
        (1, 42337, 0),
        (1, 139684, 1),
        (2, 144739, 1),
        (2, 156824, 0),
        (3, 42337, 1),
    ]
    assert [r["uuid"] for r in rows[::2]] == ["cb8c55702adb93", "79a85fa78311b9", "c1d0b7a1e4da9f"]
    # published times are offsets: add 1465876799998 ms to get time since 1970
    assert table.column("timestamp").cast("int64").to_pylist()[::2] == [
        61 + TIME_OFFSET_MS,
        81 + TIME_OFFSET_MS,
        1295999999 + TIME_OFFSET_MS,
    ]
    assert table.column("platform").to_pylist()[::2] == [3, 2, None]  # \N is unknown
    assert [(r["geo_country"], r["geo_state"], r["geo_dma"]) for r in rows[::2]] == [
        ("US", "SC", "519"),
        ("SG", "00", None),
        (None, None, None),
    ]
    assert rows[0]["ad_document_id"] == 938164 and rows[0]["advertiser_id"] == 1499
    assert (rows[0]["source_id"], rows[0]["publisher_id"]) == (1, 603)  # the page's document
    assert (rows[0]["ad_source_id"], rows[0]["ad_publisher_id"]) == (5409, None)  # the ad's document
    assert rows[0]["ad_publish_time"] == 1465380000  # 2016-06-08 10:00:00 UTC, in seconds
    assert rows[2]["source_id"] is None and rows[2]["publish_time"] is None  # empty fields in meta
    assert rows[4]["document_id"] == 1179111 and rows[4]["publish_time"] is None  # no meta row: null


def test_a_click_without_its_event_is_kept_with_null_event_fields(tmp_path):
    events = CSVS["events.csv"][:3]  # display 3 has no event
    table, bad = Outbrain(str(write(tmp_path, {"events.csv": events}))).read()
    assert bad.count == 0 and table.num_rows == 5
    assert table.column("uuid").to_pylist()[4] is None


def test_side_tables_are_typed(tmp_path):
    topics = Outbrain(str(write(tmp_path))).side_tables()["topics"]
    assert topics.column("topic_id").to_pylist() == [140, 16]
    assert topics.column("confidence_level").to_pylist() == pytest.approx([0.0731367, 0.0594224])


@pytest.mark.parametrize(
    "file, line, broken, reason",
    [
        ("clicks_train.csv", 3, "1,139684", "expected 3 fields, got 2"),
        ("clicks_train.csv", 3, "1,13968x,1", "field ad_id expected an integer id, got '13968x'"),
        ("clicks_train.csv", 3, "1,139684,2", "field clicked expected 0 or 1, got '2'"),
        (
            "events.csv",
            3,
            "1,cb8c55702adb93,379743,61,4,US",
            "field platform expected 1, 2, 3 or \\N, got '4'",
        ),
        ("events.csv", 3, "2,cb8c55702adb93,379743,61,1,US", "display_id 2 already listed above"),
        (
            "documents_meta.csv",
            3,
            "1794259,,,2016-06-08",
            "field publish_time expected YYYY-MM-DD HH:MM:SS or nothing, got '2016-06-08'",
        ),
        (
            "promoted_content.csv",
            1,
            None,
            "expected the header 'ad_id,document_id,campaign_id,advertiser_id', got 'ad_id,doc'",
        ),
    ],
)
def test_error_names_file_line_and_reason(tmp_path, file, line, broken, reason):
    lines = list(CSVS[file])
    if broken is None:
        lines[0] = "ad_id,doc"
    else:
        lines[line - 1] = broken
    with pytest.raises(BadRowError) as err:
        Outbrain(str(write(tmp_path, {file: lines}))).read()
    assert str(err.value) == f"{tmp_path / file}:{line}: {reason}"


def test_skip_counts_every_file_and_keeps_the_rest(tmp_path):
    clicks = CSVS["clicks_train.csv"][:3] + ["2,x,1", "2,1"] + CSVS["clicks_train.csv"][3:]
    events = CSVS["events.csv"] + ["1,aa,1,1,1,US"]  # a repeated display would double its clicks
    table, bad = Outbrain(
        str(write(tmp_path, {"clicks_train.csv": clicks, "events.csv": events})), "skip"
    ).read()
    assert table.column("ad_id").to_pylist() == [42337, 139684, 144739, 156824, 42337]
    assert table.column("uuid").to_pylist()[0] == "cb8c55702adb93"  # the first listing is kept
    assert bad.count == 3
    assert bad.examples == [
        (4, "clicks_train.csv: field ad_id expected an integer id, got 'x'"),
        (5, "clicks_train.csv: expected 3 fields, got 2"),
        (5, "events.csv: display_id 1 already listed above"),
    ]


def test_bad_side_table_rows_count_with_the_rest(tmp_path):
    topics = CSVS["documents_topics.csv"] + ["1595802,140,high"]
    with pytest.raises(
        BadRowError, match=r"documents_topics.csv:4: field confidence_level expected a confidence"
    ):
        Outbrain(str(write(tmp_path, {"documents_topics.csv": topics}))).read()
    data = Outbrain(str(tmp_path), bad_rows="skip")
    table, bad = data.read()
    assert table.num_rows == 5 and bad.count == 1
    assert data.side_tables()["topics"].num_rows == 2


def test_needs_the_published_files(tmp_path):
    with pytest.raises(ValueError, match="dataset.path is not set"):
        Outbrain(None)
    write(tmp_path)
    (tmp_path / "promoted_content.csv").unlink()
    with pytest.raises(FileNotFoundError, match="Outbrain promoted_content.csv .* not found"):
        Outbrain(str(tmp_path)).read()


def test_planted_twin_has_one_click_per_display_and_known_probabilities(tmp_path):
    data = SyntheticOutbrain(rows=4000, seed=0, dir=str(tmp_path))
    table, bad = data.read()
    assert bad.count == 0
    frame = table.to_pandas()
    frame["planted"] = data.planted_probability()
    by_display = frame.groupby("display_id")
    assert (by_display["clicked"].sum() == 1).all()
    assert np.allclose(by_display["planted"].sum(), 1, atol=1e-5)
    assert (
        frame["platform"].isna().any()
        and frame["geo_dma"].isna().any()
        and frame["publish_time"].isna().any()
    )
    assert set(data.side_tables()) == {"topics", "categories", "entities"}
    # the planted click is far better than chance: its top-ranked ad is clicked much more than 1/ads
    top = frame.loc[by_display["planted"].idxmax()]
    chance = (1 / by_display.size()).mean()
    assert top["clicked"].mean() > chance + 0.15


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    data = SyntheticOutbrain(rows=6000, seed=0, dir=str(tmp_path_factory.mktemp("outbrain")))
    table, _ = data.read()
    return data, table, data.truth()


def test_planted_keys_find_each_rows_chance_and_refuse_what_they_cannot(twin):
    data, table, truth = twin
    assert data.planted_keys == ("display_id", "ad_id")
    n = table.num_rows
    rows = [n - 1, 0, 5, 5]
    got = data.planted(keys_table(table, data.planted_keys, rows))
    assert got.dtype == np.float64 and got == pytest.approx(truth["probability"][rows])
    assert truth["display_id"].tolist() == table.column("display_id").to_pylist()
    assert truth["ad_id"].tolist() == table.column("ad_id").to_pylist()

    good = keys_table(table, data.planted_keys, [3, 4])
    with pytest.raises(ValueError, match=rf"keys row 0 has __row={n}, but the twin wrote {n} rows"):
        data.planted(good.set_column(0, "__row", pa.array([n, 4], pa.int64())))
    with pytest.raises(ValueError, match=r"keys row 1 is negative sample 2 \(__sub=2\) of input row 4"):
        data.planted(good.set_column(1, "__sub", pa.array([0, 2], pa.int32())))
    ad = table.column("ad_id")[4].as_py()
    with pytest.raises(
        ValueError, match=rf"keys row 1 says __key_ad_id={ad + 1}, but input row 4 has ad_id={ad}"
    ):
        data.planted(good.set_column(3, "__key_ad_id", pa.array([table.column("ad_id")[3].as_py(), ad + 1])))


def map12(frame: pd.DataFrame, score: str) -> float:
    """MAP@12 over displays (one click each): the mean of 1 / the clicked ad's rank by `score`."""
    rank = frame.groupby("display_id")[score].rank(ascending=False, method="first")
    return float((1 / rank[frame["clicked"] == 1]).mean())


def test_the_planted_cross_is_geo_state_by_advertiser_and_no_marginal(twin):
    """Wide & Deep's planted signal: a (geo_state, advertiser_id) effect, a function of that pair of
    read columns, with no mean effect of either column alone, that moves the clicks and the best MAP@12."""
    data, table, truth = twin
    frame = table.select(["display_id", "clicked", "geo_state", "advertiser_id"]).to_pandas()
    frame["state"] = frame["geo_state"].fillna("(none)")
    frame["cross"], frame["planted"] = truth["cross"], truth["probability"]
    frame["without"] = truth["score"] - truth["cross"]  # the softmax logit less the cross
    assert frame["state"].nunique() >= 15 and frame["advertiser_id"].nunique() >= 10
    pairs = frame.groupby(["state", "advertiser_id"])["cross"]
    assert (pairs.nunique() == 1).all()  # a function of the two columns
    spread = frame["cross"].std()
    assert spread > 0.8
    # neither column carries it alone: means per state and per advertiser are near 0 (sampling noise)
    states = frame.groupby("state")["cross"].agg(["mean", "size"])
    assert states.loc[states["size"] >= 300, "mean"].abs().max() < 0.2 * spread
    assert frame.groupby("advertiser_id")["cross"].mean().std() < 0.15 * spread
    assert pairs.mean().std() > 0.8 * spread  # ... while the pairs differ
    # the clicks follow it: the clicked ad's cross is above its display's mean, by a clear margin
    lift = frame["cross"] - frame.groupby("display_id")["cross"].transform("mean")
    assert lift[frame["clicked"] == 1].mean() > 0.3
    assert map12(frame, "planted") > map12(frame, "without") + 0.04
    assert map12(frame, "planted") == pytest.approx(map12(frame.assign(s=truth["score"]), "s"))
