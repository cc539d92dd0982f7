"""Column groups: the named sets of columns a data set offers a RecDP pipeline (`columns: sparse`)."""

from __future__ import annotations

# In this order in `groups()`; a data set defines the ones its format has, as class attributes.
GROUPS = ("label", "dense", "sparse", "sequence", "timestamp", "published", "user", "item", "group", "day")


def column_groups(dataset: object) -> dict[str, list[str]]:
    """Every group the data set defines, as lists; `labels` (several tasks) stands for `label`."""
    groups: dict[str, list[str]] = {}
    for name in GROUPS:
        value = getattr(dataset, "labels" if name == "label" and hasattr(dataset, "labels") else name, None)
        if value is not None:
            groups[name] = [value] if isinstance(value, str) else list(value)
    return groups
