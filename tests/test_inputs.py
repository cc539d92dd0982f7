"""A model's `inputs` resolved against the processed data: groups and columns, kinds, table sizes, and
mistakes named by their config key before any training."""

import pyarrow as pa
import pytest

from bluewhale.model.inputs import check_inputs, features, resolve_inputs, tasks

SCHEMA = pa.schema(
    [
        ("label", pa.int8()),
        ("I1", pa.float32()),
        ("I2", pa.float32()),
        ("user", pa.int32()),
        ("item", pa.int32()),
        ("raw", pa.int64()),
        ("name", pa.string()),
        ("hist_item", pa.list_(pa.int32())),
        ("__row", pa.int64()),
    ]
)
META = {
    "groups": {
        "label": ["label"],
        "dense": ["I1", "I2"],
        "sparse": ["user", "item"],
        "history": ["hist_item"],
    },
    "cardinalities": {"user": 10, "item": 20, "hist_item": 20},
}


def test_groups_and_columns_resolve_with_kinds_and_table_sizes():
    spec = {"label": "label", "dense": "dense", "ids": ["sparse"], "seq": "hist_item", "one": ["item"]}
    inputs = resolve_inputs(spec, META, SCHEMA)
    assert inputs["dense"].columns == ("I1", "I2") and inputs["dense"].kind == "float"
    assert inputs["ids"].columns == ("user", "item") and inputs["ids"].cardinalities == (10, 20)
    assert inputs["seq"].kind == "list" and inputs["seq"].cardinalities == (20,)
    assert inputs["one"].index("item", "model.x") == 0 and tasks(inputs) == 1
    assert dict(features(inputs).groups)["ids"] == ("user", "item")


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"dense": "dense"}, r"model.inputs.label: missing"),
        ({"label": "label", "h": "history2"}, r"model.inputs.h: 'history2' is neither a column group"),
        (
            {"label": "label", "h": "__row"},
            r"model.inputs.h: '__row' is neither",
        ),  # hidden columns stay hidden
        ({"label": "label", "x": ["I1", "user"]}, r"model.inputs.x: columns \['I1', 'user'\] mix"),
        ({"label": "label", "x": "raw"}, r"model.inputs.x: columns \['raw'\] hold integers that no op"),
        ({"label": "label", "x": "name"}, r"model.inputs.x: column 'name' holds string"),
    ],
)
def test_mistakes_name_the_key(spec, message):
    with pytest.raises(ValueError, match=message):
        resolve_inputs(spec, META, SCHEMA)


def test_the_check_before_processing_knows_groups_and_their_columns():
    check_inputs({"label": "label", "h": "history", "i": ["item"]}, META["groups"])
    with pytest.raises(ValueError, match=r"model.inputs.h: the pipeline makes no group or column 'history'"):
        check_inputs({"label": "label", "h": "history"}, {"label": ["label"], "sparse": ["item"]})


def test_a_bad_cross_stops_the_command_before_any_data_is_written(tmp_path):
    """Model settings are checked by the model's own hook before processing (W&D's crosses here)."""
    from tests.conftest import run_bluewhale

    failed = run_bluewhale(
        tmp_path, "experiment=wnd_outbrain", "model.crosses=[[geo_state,nope]]", check=False
    )
    assert failed.returncode != 0 and "model.crosses[0]" in failed.stderr
    assert not (tmp_path / "data").exists()
