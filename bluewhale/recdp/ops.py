"""RecDP operators as data: what a pipeline YAML declares, checked before any work starts."""

from __future__ import annotations

from dataclasses import dataclass, field

KNOWN_OPS = {"fill_na": {"value"}, "clip": set(), "log1p": set(), "categorify": set()}
OPTIONAL_ARGS = {"clip": {"lower", "upper"}, "categorify": {"freq_threshold"}}


@dataclass(frozen=True)
class Op:
    """One step: an operator name, the columns it applies to, and its arguments."""

    op: str
    columns: tuple[str, ...]
    args: dict = field(default_factory=dict)


def parse_ops(specs: list[dict], groups: dict[str, list[str]], where: str = "recdp.ops") -> list[Op]:
    """Turn YAML op specs into `Op`s, naming the config key of anything a user got wrong."""
    ops = []
    all_columns = {c for cols in groups.values() for c in cols}
    for i, spec in enumerate(specs):
        spec = dict(spec)
        key = f"{where}[{i}]"
        name = spec.pop("op", None)
        if name not in KNOWN_OPS:
            raise ValueError(f"{key}.op: unknown operator {name!r}; expected one of {sorted(KNOWN_OPS)}")
        columns = spec.pop("columns", None)
        if columns is None:
            raise ValueError(f"{key}.columns: missing; expected a column group {sorted(groups)} or a list")
        resolved = (
            tuple(groups[columns])
            if isinstance(columns, str) and columns in groups
            else tuple([columns] if isinstance(columns, str) else columns)
        )
        unknown = [c for c in resolved if c not in all_columns]
        if unknown:
            raise ValueError(
                f"{key}.columns: unknown columns {unknown}; the data set has {sorted(all_columns)}"
            )
        missing = KNOWN_OPS[name] - spec.keys()
        extra = spec.keys() - KNOWN_OPS[name] - OPTIONAL_ARGS.get(name, set())
        if missing or extra:
            raise ValueError(
                f"{key}: operator {name} needs {sorted(KNOWN_OPS[name])}, "
                f"accepts {sorted(OPTIONAL_ARGS.get(name, set()))}; got {sorted(spec)}"
            )
        ops.append(Op(name, resolved, spec))
    return ops
