"""Where a user points `dataset.path`: the folder a data set unpacks to as well as the file, an empty file
named in the error, and a pipeline made for another data set refused before any work."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bluewhale.app import compose_experiment
from bluewhale.dataset import build, check_pipeline
from bluewhale.dataset.amazon_books import AmazonBooks
from bluewhale.dataset.criteo import CriteoFile
from bluewhale.dataset.movielens import MovieLens
from bluewhale.dataset.outbrain import Outbrain
from bluewhale.dataset.synthetic_amazon_books import SyntheticAmazonBooks
from bluewhale.dataset.synthetic_outbrain import SyntheticOutbrain
from bluewhale.dataset.twitter import TwitterRecSys2021
from bluewhale.pipeline import check_experiment

U_DATA = "196\t242\t3\t881250949\n186\t302\t4\t891717742\n22\t377\t1\t878887116\n"


def ml_100k(root: Path) -> Path:
    folder = root / "ml-100k"
    folder.mkdir(parents=True)
    (folder / "u.data").write_text(U_DATA)
    (folder / "README").write_text("MovieLens 100k\n")
    return folder


def test_movielens_path_may_name_the_unpacked_folder_or_the_folder_above_it(tmp_path):
    folder = ml_100k(tmp_path)
    by_file = MovieLens(str(folder / "u.data")).read()[0]
    for path in (folder, tmp_path):  # ml-100k/, or where the zip was unpacked (its one subfolder)
        data = MovieLens(str(path))
        assert data.path == folder / "u.data" and data.variant == "ml-100k"
        assert data.read()[0].equals(by_file)


def test_a_folder_without_ratings_names_what_was_expected(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"u\.data', 'ratings\.dat', 'ratings\.csv'.*notes\.txt"):
        MovieLens(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"expected one of \['ratings\.dat'\]"):
        MovieLens(str(tmp_path), variant="ml-1m")


def test_outbrain_and_amazon_paths_may_name_a_file_or_the_folder_above(tmp_path):
    outbrain = SyntheticOutbrain(rows=200, seed=0, dir=str(tmp_path / "ob"))
    outbrain.prepare()
    for path in (outbrain.folder / "clicks_train.csv", tmp_path / "ob", outbrain.folder):
        assert Outbrain(str(path)).folder == outbrain.folder
    amazon = SyntheticAmazonBooks(rows=200, seed=0, dir=str(tmp_path / "az"))
    amazon.prepare()
    for path in (amazon.reviews_path, amazon.meta_path, tmp_path / "az", amazon.reviews_path.parent):
        assert AmazonBooks(str(path)).reviews_path == amazon.reviews_path
    assert (
        Outbrain(str(outbrain.folder / "clicks_train.csv")).read()[0].num_rows == outbrain.read()[0].num_rows
    )


@pytest.mark.parametrize("reader", ["criteo", "movielens", "twitter", "outbrain", "amazon"])
def test_an_empty_input_file_is_named(tmp_path, reader):
    if reader == "criteo":
        (tmp_path / "train.txt").write_text("")
        data, empty = CriteoFile(str(tmp_path / "train.txt")), tmp_path / "train.txt"
    elif reader == "movielens":
        (tmp_path / "u.data").write_text("")
        data, empty = MovieLens(str(tmp_path)), tmp_path / "u.data"
    elif reader == "twitter":
        (tmp_path / "part-00000").write_text("")
        data, empty = TwitterRecSys2021(str(tmp_path)), tmp_path / "part-00000"
    elif reader == "outbrain":
        source = SyntheticOutbrain(rows=200, seed=0, dir=str(tmp_path / "src"))
        source.prepare()
        shutil.copytree(source.folder, tmp_path / "outbrain")
        empty = tmp_path / "outbrain" / "events.csv"
        empty.write_text("")
        data = Outbrain(str(tmp_path / "outbrain"))
    else:
        (tmp_path / "reviews_Books_5.json").write_text("")
        (tmp_path / "meta_Books.json").write_text("{'asin': 'a'}\n")
        data, empty = AmazonBooks(str(tmp_path)), tmp_path / "reviews_Books_5.json"
    with pytest.raises(ValueError, match=f"dataset.path: .*{empty}.* is empty"):
        data.fingerprint()
    with pytest.raises(ValueError, match=f"{empty}.* is empty"):
        data.read()


def test_a_pipeline_made_for_another_data_set_stops_before_any_work(tmp_path):
    cfg = compose_experiment(
        ["dataset=movielens", f"paths.data_dir={tmp_path}"]
    )  # the default Criteo pipeline
    dataset = build(cfg.dataset)
    with pytest.raises(ValueError, match=r"recdp=criteo_dlrm .* not for MovieLens; .*: recdp=movielens_seq$"):
        check_experiment(cfg, dataset)
    assert not any(tmp_path.iterdir())  # nothing generated, nothing processed
    check_pipeline(dataset, "movielens_seq")  # its own pipeline
    check_pipeline(dataset, "my_movielens_features")  # a user's own pipeline: its columns are checked later
    outbrain = build(compose_experiment(["dataset=synthetic_outbrain", "recdp=amazon_dien"]).dataset)
    with pytest.raises(
        ValueError, match="recdp=amazon_dien is a pipeline made for AmazonBooks data, not for Outbrain"
    ):
        check_pipeline(outbrain, "amazon_dien")


@pytest.mark.parametrize(
    "experiment", ["dlrm_criteo", "dien_amazon", "dien_movielens", "wnd_outbrain", "recsys_twitter"]
)
def test_every_recipe_pairs_its_data_set_with_a_pipeline_made_for_it(experiment):
    cfg = compose_experiment([f"experiment={experiment}"])
    check_pipeline(build(cfg.dataset), cfg.recdp.name)
