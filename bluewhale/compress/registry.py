"""The MLflow side of compression: the model to start from (`compression.source`), and the compressed
model logged to the active run and registered as a new version of a registered model, all or nothing."""

from __future__ import annotations

import logging

import mlflow
import torch
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from torch import nn

log = logging.getLogger(__name__)
SCHEMES = ("runs:/", "models:/")


def load(source: str, key: str = "compression.source") -> nn.Module:
    """The PyTorch model at `source` (runs:/<run id>/<path> or models:/<name>/<version>), or an error
    naming `key` that says what is there instead."""
    if not isinstance(source, str) or not source.startswith(SCHEMES):
        raise ValueError(f"{key}: expected runs:/<run id>/model or models:/<name>/<version>, got {source!r}")
    try:
        model = mlflow.pytorch.load_model(source)
    except (MlflowException, OSError) as error:
        raise ValueError(f"{key}: no model at {source}: {str(error).splitlines()[0]}") from error
    if not isinstance(model, nn.Module):
        raise ValueError(f"{key}: {source} holds a {type(model).__name__}, not a PyTorch model")
    return model


def log_and_register(model: nn.Module, name: str, tags: dict[str, str]) -> str:
    """Log `model` as the active run's `compressed_model` and make it a new version of the registered model
    `name` (created if new). On any failure nothing stays registered: a registered model this call
    created is deleted again. Returns the version."""
    info = mlflow.pytorch.log_model(
        model,
        name="compressed_model",
        serialization_format="pickle",  # quantised modules pickle; the classes are torch's and ours
        pip_requirements=[f"torch=={torch.__version__}"],
    )
    client = MlflowClient()
    created = False
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="bluewhale compressed models")
        created = True
    try:
        version = client.create_model_version(
            name, info.model_uri, run_id=mlflow.active_run().info.run_id, tags=tags
        )
    except Exception:
        if created:
            client.delete_registered_model(name)
        raise
    log.info("registered %s version %s", name, version.version)
    return version.version
