"""The trained model in MLflow: the PyTorch flavour (loads back as the same `nn.Module`, which takes a
batch dict of tensors) with a signature and an input example, and a pyfunc flavour of ours that scores
such a dict, since MLflow's PyTorch pyfunc takes a single array only.

The module is saved with pickle, not as a `pt2` exported graph: `torch.export` takes positional tensors
and traces one graph, while our models read a dict of groups and some run data-dependent loops (DIEN's
GRU over history lengths). Pickle stores our own classes, which load wherever bluewhale is installed;
MLflow's generic warning about pickle is therefore silenced while saving, and said once here instead.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.models import Model, ModelSignature
from mlflow.types import Schema, TensorSpec

FLAVOR_NAME = "bluewhale"
EXAMPLE_ROWS = 5


def signature(example: dict[str, np.ndarray], output: np.ndarray) -> ModelSignature:
    """Named tensors in (any batch size: dimension 0 is -1), the probabilities out."""
    inputs = [TensorSpec(v.dtype, (-1, *v.shape[1:]), k) for k, v in example.items()]
    return ModelSignature(Schema(inputs), Schema([TensorSpec(output.dtype, (-1, *output.shape[1:]))]))


def example_batch(batch: dict[str, torch.Tensor], rows: int = EXAMPLE_ROWS) -> dict[str, np.ndarray]:
    """The first rows of a batch, without its label: what the model reads."""
    return {k: v[:rows].numpy() for k, v in batch.items() if k != "label"}


@torch.no_grad()
def probabilities(model: torch.nn.Module, batch: dict[str, np.ndarray]) -> np.ndarray:
    model.eval()
    return torch.sigmoid(model({k: torch.as_tensor(np.asarray(v)) for k, v in batch.items()})).numpy()


def log_model(model: torch.nn.Module, batch: dict[str, torch.Tensor], name: str = "model") -> Any:
    """Log `model` to the active run with a signature and input example taken from a batch it reads."""
    example = example_batch(batch)
    return Model.log(
        artifact_path=None,
        name=name,
        flavor=sys.modules[__name__],
        pytorch_model=model,
        signature=signature(example, probabilities(model, example)),
        input_example=example,
        pip_requirements=[f"torch=={torch.__version__}"],
    )


class _NoPickleWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Pickle or CloudPickle" not in record.getMessage()


@contextmanager
def _quiet_pickle_warning() -> Iterator[None]:
    logger, quiet = logging.getLogger("mlflow.pytorch"), _NoPickleWarning()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def save_model(path: str, mlflow_model: Model, pytorch_model: torch.nn.Module, **kwargs: Any) -> None:
    """The flavour hook `Model.log` calls: MLflow's PyTorch flavour, then our pyfunc loader in place of
    its own (kept apart from MLflow's options: `validate_serving_input` and the like are not torch's)."""
    keep = ("signature", "input_example", "pip_requirements", "conda_env", "code_paths", "metadata")
    with _quiet_pickle_warning():
        mlflow.pytorch.save_model(
            pytorch_model,
            path,
            mlflow_model=mlflow_model,
            serialization_format="pickle",
            **{k: v for k, v in kwargs.items() if k in keep},
        )
    pyfunc = mlflow_model.flavors["python_function"]
    pyfunc["loader_module"] = __name__
    mlflow_model.save(os.path.join(path, "MLmodel"))


class BatchScorer:
    """What `mlflow.pyfunc.load_model` gives: `predict({group: array})` -> click probabilities."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def predict(self, data: dict[str, np.ndarray], params: dict | None = None) -> np.ndarray:
        if not isinstance(data, dict):
            raise TypeError(f"expected a dict of arrays, one per input group; got {type(data).__name__}")
        return probabilities(self.model, data)

    def get_raw_model(self) -> torch.nn.Module:
        return self.model


def _load_pyfunc(data_path: str, model_config: dict | None = None) -> BatchScorer:
    """pyfunc loader: `data_path` is the model's `data` folder; the model is its parent."""
    return BatchScorer(mlflow.pytorch.load_model(os.path.dirname(os.path.abspath(data_path))))
