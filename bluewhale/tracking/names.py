"""Run names a person can read in the MLflow runs table: what the run trained, on what, on which engine,
and the command-line overrides that make it differ from the defaults (a sweep's children too)."""

from __future__ import annotations

import re

# config groups the name leads with, in this order; their overrides are not repeated after it
LEAD = ("model", "dataset", "engine")
# overrides that say nothing about the run's result (where it logs, how it prints)
QUIET = ("tracking.", "train.progress", "hydra.", "paths.")
MAX_LENGTH = 120  # MLflow accepts longer; more than this does not read as a name


def _short(override: str) -> str:
    """`model.embedding_dim=8` -> `embedding_dim=8`; `+train.x=1` -> `x=1`; a group choice stays whole."""
    key, _, value = override.lstrip("+~").partition("=")
    value = re.sub(r"\s+", "", value)
    return f"{key.rsplit('.', 1)[-1]}={value}" if value else key.rsplit(".", 1)[-1]


def run_name(choices: dict[str, str], overrides: list[str]) -> str:
    """`dlrm·synthetic_criteo·pandas embedding_dim=8 epochs=2` from the chosen config groups
    (Hydra's `runtime.choices`) and the job's overrides."""
    lead = "·".join(str(choices[g]) for g in LEAD if choices.get(g))
    rest = [
        _short(o)
        for o in overrides
        if o.lstrip("+~").partition("=")[0] not in LEAD and not o.lstrip("+~").startswith(QUIET)
    ]
    name = " ".join([lead or "run", *rest])
    return name if len(name) <= MAX_LENGTH else name[: MAX_LENGTH - 1] + "…"
