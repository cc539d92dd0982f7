"""The Twitter RecSys 2021 reader on `\\x01`/tab lines written here, broken lines, and the planted twin."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

from bluewhale.dataset.badrows import BadRowError
from bluewhale.dataset.planted import keys_table
from bluewhale.dataset.synthetic_twitter import SyntheticTwitterRecSys2021
from bluewhale.dataset.twitter import FIELDS, TASKS, TwitterRecSys2021

HASHTAG = "E7F038DE3EAD397AEC9193686C911677"


def fields(**changes) -> dict[str, str]:
    row = {
        "text_tokens": "101\t56898\t137\t102",
        "hashtags": "",
        "tweet_id": "ABE6C61A1F2E8DE8D2DCDEDE6A8F1DBF",
        "present_media": "Photo\tPhoto",
        "present_links": "",
        "present_domains": "",
        "tweet_type": "TopLevel",
        "language": "488B32D24BD4BB44172EB981C1BCA6FA",
        "tweet_timestamp": "1612396800",
        "engaged_with_user_id": "0000006C3074607050F1339DDCB890BB",
        "engaged_with_user_follower_count": "27448",
        "engaged_with_user_following_count": "600",
        "engaged_with_user_is_verified": "false",
        "engaged_with_user_account_creation": "1318373150",
        "engaging_user_id": "00000776B07587ECA9717BFC301F2D6E",
        "engaging_user_follower_count": "94",
        "engaging_user_following_count": "648",
        "engaging_user_is_verified": "false",
        "engaging_user_account_creation": "1473184788",
        "engagee_follows_engager": "true",
        "reply_timestamp": "",
        "retweet_timestamp": "",
        "retweet_with_comment_timestamp": "",
        "like_timestamp": "1612398000",
    }
    return row | changes


def line(**changes) -> str:
    return "\x01".join(fields(**changes).values())


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reads_lists_flags_times_and_the_four_targets(tmp_path):
    second = line(
        hashtags=f"{HASHTAG}\t{HASHTAG[::-1]}",
        present_media="",
        tweet_type="Quote",
        engaged_with_user_is_verified="true",
        reply_timestamp="1612400000",
        retweet_with_comment_timestamp="1612400001",
        like_timestamp="",
    )
    table, bad = TwitterRecSys2021(str(write(tmp_path / "part-00000", [line(), second]))).read()
    assert bad.count == 0
    assert table.column("text_tokens").to_pylist() == [[101, 56898, 137, 102]] * 2
    assert table.column("hashtags").to_pylist() == [[], [HASHTAG, HASHTAG[::-1]]]
    assert table.column("present_media").to_pylist() == [["Photo", "Photo"], []]
    assert table.column("present_links").to_pylist() == [[], []]
    assert table.column("engaged_with_user_is_verified").to_pylist() == [False, True]
    assert table.column("engagee_follows_engager").to_pylist() == [True, True]
    assert table.column("engaging_user_follower_count").to_pylist() == [94, 94]
    assert table.column("tweet_timestamp").cast("int64").to_pylist() == [1612396800] * 2
    assert {t: table.column(t).to_pylist() for t in ["reply", "retweet", "quote", "like"]} == {
        "reply": [0, 1],
        "retweet": [0, 0],
        "quote": [0, 1],
        "like": [1, 0],
    }
    assert table.column("like_timestamp").cast("int64").to_pylist() == [1612398000, None]


@pytest.mark.parametrize(
    "broken, reason",
    [
        (line()[:100], "expected 24 \\x01-separated fields, got 8"),  # truncated inside field 8
        (line() + "\x011", "expected 24 \\x01-separated fields, got 25"),
        (
            line(engaging_user_follower_count="9.4K"),
            "field engaging_user_follower_count expected a count, got '9.4K'",
        ),
        (
            line(text_tokens="101\t\t102"),
            "field text_tokens expected tab-separated token ids, got '101\\t\\t102'",
        ),
        (
            line(tweet_type="Thread"),
            "field tweet_type expected one of ['TopLevel', 'Retweet', 'Quote', 'Reply'], got 'Thread'",
        ),
        (line(engagee_follows_engager="1"), "field engagee_follows_engager expected true or false, got '1'"),
        (line(like_timestamp="yes"), "field like_timestamp expected integer seconds or nothing, got 'yes'"),
    ],
)
def test_error_names_file_line_and_reason(tmp_path, broken, reason):
    path = write(tmp_path / "part-00000", [line(), line(), broken, line()])
    with pytest.raises(BadRowError) as err:
        TwitterRecSys2021(str(path)).read()
    assert str(err.value) == f"{path}:3: {reason}"


def test_skip_over_a_folder_of_parts_counts_each_file(tmp_path):
    good = [line(engaging_user_follower_count=str(n)) for n in range(8)]
    write(tmp_path / "part-00000", good[:3] + [line(tweet_type="")] + good[3:5])
    write(tmp_path / "part-00001", [line()[:50]] + good[5:])  # cut inside the third field
    (tmp_path / "_SUCCESS").write_text("")
    table, bad = TwitterRecSys2021(str(tmp_path), bad_rows="skip").read()
    assert table.column("engaging_user_follower_count").to_pylist() == list(range(8))
    assert bad.count == 2
    assert bad.examples == [
        (
            4,
            "part-00000: field tweet_type expected one of ['TopLevel', 'Retweet', 'Quote', 'Reply'], got None",
        ),
        (1, "part-00001: expected 24 \\x01-separated fields, got 3"),
    ]


def test_planted_twin_has_24_fields_four_rates_and_a_known_signal(tmp_path):
    data = SyntheticTwitterRecSys2021(rows=5000, seed=0, dir=str(tmp_path))
    data.prepare()
    rows = [r.split("\x01") for r in data.path.read_text().splitlines()]
    assert len(rows) == 5000 and {len(r) for r in rows} == {len(FIELDS)}
    assert any(r[1] == "" for r in rows) and any("\t" in r[1] for r in rows), "hashtags: empty and lists"
    table, bad = data.read()
    planted = data.planted_probabilities()
    assert np.array_equal(data.planted_probability(), planted["like"])
    for task, (low, high) in {"reply": (0.01, 0.06), "retweet": (0.06, 0.13), "like": (0.35, 0.45)}.items():
        label = table.column(task).to_numpy()
        assert low < label.mean() < high
        assert roc_auc_score(label, planted[task]) > 0.7
    # planted(keys): every task's probability, by input row, in the order of `labels`
    assert list(data.labels) == TASKS
    got = data.planted(keys_table(table, data.planted_keys, [4999, 0, 7]))
    assert got.dtype == np.float64 and got.shape == (3, 4)
    for k, task in enumerate(TASKS):
        assert got[:, k].tolist() == planted[task][[4999, 0, 7]].astype(np.float64).tolist()
    with pytest.raises(ValueError, match=r"keys row 0 is negative sample 1 \(__sub=1\) of input row 7"):
        data.planted(keys_table(table, [], [7], [1]))
    with pytest.raises(ValueError, match=r"keys row 0 has __row=5000, but the twin wrote 5000 rows"):
        data.planted(keys_table(table, [], [0]).set_column(0, "__row", pa.array([5000], pa.int64())))
