"""connector=petastorm: Petastorm's make_batch_reader reads the cache entries the main environment writes.

Runs in .venv-petastorm (`make test-petastorm`, its own CI step); skipped where petastorm is not installed.
"""

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.test_connector import FEATURES, ids_of, planted

petastorm = pytest.importorskip("petastorm")
from bluewhale.connector import Cache, Connector, convert  # noqa: E402
from bluewhale.connector.petastorm import PetastormConnector  # noqa: E402
from tests.conftest import run_bluewhale, runs  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
ROOT = Path(__file__).resolve().parent.parent
MAIN_PYTHON = ROOT / ".venv" / "bin" / "python"
ROWS = 2000
WRITE = """
import sys, numpy as np
from bluewhale.connector import Cache, convert
from tests.test_connector import planted
print(convert(planted(np.arange(int(sys.argv[2]))), Cache(sys.argv[1]), rows_per_group=150, rows_per_file=700).url)
"""


@pytest.fixture(scope="module")
def entry(tmp_path_factory) -> str:
    """A cache entry written by the main environment's converter (pyarrow 21) when it is there."""
    root = tmp_path_factory.mktemp("cache")
    if MAIN_PYTHON.exists():
        out = subprocess.run(
            [str(MAIN_PYTHON), "-c", WRITE, str(root), str(ROWS)], cwd=ROOT, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()
    return convert(planted(np.arange(ROWS)), Cache(root), rows_per_group=150, rows_per_file=700).url


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_petastorm_reads_every_row_once_across_ranks(entry, world_size):
    connector = PetastormConnector(cache_dir="unused", shuffle_buffer=300)
    seen = Counter()
    for rank in range(world_size):
        loader = connector.loader(entry, FEATURES, 64, train=True, seed=1, rank=rank, world_size=world_size)
        batches = list(loader)
        assert len(batches) == len(loader)
        seen.update(ids_of(batches))
    assert sorted(seen) == list(range(ROWS)) and set(seen.values()) == {1}


def test_petastorm_scores_in_file_order_like_the_pyarrow_backend(entry):
    petastorm_rows = ids_of(PetastormConnector(cache_dir="unused").loader(entry, FEATURES, 128, train=False))
    pyarrow_rows = ids_of(
        Connector(cache_dir="unused", num_workers=2).loader(entry, FEATURES, 128, train=False)
    )
    assert petastorm_rows == pyarrow_rows == list(range(ROWS))


def test_petastorm_shuffles_by_seed_and_epoch(entry):
    loader = PetastormConnector(cache_dir="unused", shuffle_buffer=300).loader(
        entry, FEATURES, 50, train=True, seed=4, rank=0, world_size=1
    )
    first, second = ids_of(loader), ids_of(loader)
    assert first != second and sorted(first) == sorted(second) == list(range(ROWS))
    assert np.mean(np.abs(np.diff(first)) == 1) < 0.1


@pytest.mark.slow
def test_bluewhale_trains_with_connector_petastorm(tmp_path):
    assert Path(sys.executable).parent.joinpath("bluewhale").exists()
    args = ["connector=petastorm", "dataset.rows=20000", "tracking.log_model=false"]
    run_bluewhale(tmp_path, *args)
    run_bluewhale(tmp_path, *args)
    second, first = runs(tmp_path)
    assert first.data.metrics["test_auc"] > 0.6  # learns: 0.5 is chance, the planted optimum is about 0.82
    assert first.data.tags["bluewhale.connector.train"] == "miss"
    assert second.data.tags["bluewhale.connector.train"] == "hit"
    assert second.data.metrics["test_auc"] > 0.6
