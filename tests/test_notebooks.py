"""Every recipe notebook (recipes/*/*.ipynb) runs top to bottom on a real Jupyter kernel, on small data."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow
RECIPES = Path(__file__).resolve().parent.parent / "recipes"
NOTEBOOKS = sorted(RECIPES.glob("*/*.ipynb"))


def test_every_recipe_has_a_notebook():
    experiments = (RECIPES.parent / "conf" / "experiment").glob("*.yaml")
    recipes = sorted(p.stem for p in experiments)
    assert recipes and sorted(p.parent.name for p in NOTEBOOKS) == recipes


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.parent.name)
def test_notebook_runs_without_error(path, tmp_path, monkeypatch):
    monkeypatch.setenv("BLUEWHALE_NOTEBOOK_SMALL", "1")  # the notebooks pick small sizes
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=900, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(
        o.get("output_type") == "display_data" and "image/png" in o.get("data", {}) for o in outputs
    ), "the notebook draws its plots"
    assert (tmp_path / "mlflow.db").exists() and os.path.getsize(tmp_path / "mlflow.db") > 0
