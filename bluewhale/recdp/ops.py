"""RecDP operators as data: what a pipeline YAML declares, checked before any work starts.

Every op is fitted on the train rows and applied to every row. Column ops (`columns:` a group of the
data set or a list) replace their columns in place; `time_features`, `join` and `sequence_history` add
columns, into the group named by their `group` argument (a new group if the data set has none of it).

Missing values have one meaning on every engine:
- `sequence_history`: a row's history is the `columns` of its user's real rows (not sampled negatives)
  whose time is strictly earlier than its own, in (time, row) order, the last `max_len` of them; rows
  of one user at the same time do not see each other, a negative gets its positive's history, and the
  op order does not matter. A row with a null (or NaN) user or time has an empty history and is in no
  one's. A null value in a history column stays in the list as a null element, so the lists of one op's
  columns stay aligned element by element.
- `target_encode`: rows with a null target count for nothing (neither in sums nor in counts).
- `hash_mod`: a missing value (null, or NaN in a float column) gets id 0, real values 1..`buckets`.
- `negative_sample`: a row with a null label is not a positive (it gets no negatives).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# name -> (required arguments, optional arguments with their defaults)
SPECS: dict[str, tuple[set[str], dict]] = {
    "fill_na": ({"value"}, {}),
    "clip": (set(), {"lower": None, "upper": None}),
    "log1p": (set(), {}),
    "normalize": (set(), {}),
    "bucketize": ({"boundaries"}, {}),
    "hash_mod": ({"buckets"}, {}),
    "categorify": (set(), {"freq_threshold": 1, "shared": []}),
    "count_encode": (set(), {}),
    "target_encode": ({"target"}, {"folds": 5, "smoothing": 20.0}),
    "time_features": ({"unit"}, {"features": ["hour", "weekday", "day"], "group": "time"}),
    "join": ({"table", "keys", "columns"}, {"group": "joined"}),
    "sequence_history": ({"user", "item", "time", "max_len"}, {"columns": None, "group": "history"}),
    "negative_sample": ({"item", "ratio", "seed"}, {"label": None, "item_columns": []}),
}
KNOWN_OPS = set(SPECS)
# ops whose `columns:` are the input columns they transform (the others name their columns in arguments)
COLUMN_OPS = {"fill_na", "clip", "log1p", "normalize", "bucketize", "hash_mod", "categorify"}
COLUMN_OPS |= {"count_encode", "target_encode", "time_features"}
TIME_FEATURES = {"hour": 24, "weekday": 7, "day": None}  # feature -> cardinality (day: days since 1970)
TIME_UNITS = {"s": 1, "ms": 1000}


@dataclass(frozen=True)
class Op:
    """One step: an operator name, the columns it applies to, and its arguments (defaults filled in)."""

    op: str
    columns: tuple[str, ...]
    args: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Split:
    """How rows are split into train, valid (optional) and test: by position (the last `test_fraction`
    of the rows are test, the `valid_fraction` before them valid) or by time (`column > test_after` is
    test, `valid_after < column <= test_after` valid)."""

    by: str
    test_fraction: float | None = None
    valid_fraction: float = 0.0
    column: str | None = None
    test_after: float | None = None
    valid_after: float | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The splits this pipeline writes, in order."""
        has_valid = self.valid_fraction > 0 or self.valid_after is not None
        return ("train", "valid", "test") if has_valid else ("train", "test")


@dataclass(frozen=True)
class Pipeline:
    """A parsed RecDP pipeline: ops in order, the split, and the column groups before and after."""

    name: str
    ops: list[Op]
    split: Split
    groups: dict[str, list[str]]
    output_groups: dict[str, list[str]]


def _resolve(columns, groups: dict[str, list[str]]) -> tuple[str, ...]:
    if isinstance(columns, str):
        return tuple(groups[columns]) if columns in groups else (columns,)
    return tuple(c for item in columns for c in _resolve(item, groups))


def parse_ops(
    specs: list[dict],
    groups: dict[str, list[str]],
    where: str = "recdp.ops",
    side_tables: dict[str, list[str]] | None = None,
) -> list[Op]:
    """Turn YAML op specs into `Op`s, naming the config key of anything a user got wrong.

    `groups` maps each column group of the data set to its columns; `side_tables` maps each side table
    the data set offers for `join` to its columns (None: not known, checked when the table is read).
    """
    ops = []
    groups = {k: list(v) for k, v in groups.items()}
    for i, spec in enumerate(specs):
        spec = dict(spec)
        key = f"{where}[{i}]"
        odd = [k for k in spec if not isinstance(k, str)]
        if odd:  # YAML 1.1 reads the keys on/off/yes/no as booleans
            raise ValueError(
                f"{key}: argument names must be strings, got {odd} (quote on/off/yes/no in YAML)"
            )
        name = spec.pop("op", None)
        if name not in SPECS:
            raise ValueError(f"{key}.op: unknown operator {name!r}; expected one of {sorted(SPECS)}")
        required, optional = SPECS[name]
        columns = spec.pop("columns", None) if name in COLUMN_OPS else None
        missing = required - spec.keys()
        extra = spec.keys() - required - optional.keys()
        if missing or extra:
            raise ValueError(
                f"{key}: operator {name} needs {sorted(required)}, accepts {sorted(optional)}; got {sorted(spec)}"
            )
        args = {**optional, **spec}
        known = {c for cols in groups.values() for c in cols}

        def check(names, arg: str, known=known, key=key) -> tuple[str, ...]:
            resolved = _resolve(names, groups)
            unknown = [c for c in resolved if c not in known]
            if unknown:
                raise ValueError(f"{key}.{arg}: unknown columns {unknown}; the data set has {sorted(known)}")
            return resolved

        if name in COLUMN_OPS:
            if columns is None and not (name == "categorify" and args["shared"]):
                raise ValueError(
                    f"{key}.columns: missing; expected a column group {sorted(groups)} or a list"
                )
            resolved = check(columns, "columns") if columns is not None else ()
        else:
            resolved = ()
        _check_args(name, args, key, resolved, check, side_tables, groups)
        if name == "categorify":
            shared = [check(g, f"shared[{j}]") for j, g in enumerate(args["shared"])]
            in_shared = [c for g in shared for c in g]
            if len(set(in_shared)) != len(in_shared):
                raise ValueError(f"{key}.shared: a column is in more than one shared vocabulary: {shared}")
            args["vocabularies"] = [*shared, *[(c,) for c in resolved if c not in in_shared]]
            resolved = tuple(c for v in args["vocabularies"] for c in v)
            del args["shared"]
        for group, new in _outputs(name, args, resolved).items():
            groups.setdefault(group, [])
            groups[group] += [c for c in new if c not in groups[group]]
        ops.append(Op(name, resolved, args))
    return ops


def _check_args(name, args, key, columns, check, side_tables, groups) -> None:
    def need(ok: bool, arg: str, expected: str) -> None:
        if not ok:
            raise ValueError(f"{key}.{arg}: expected {expected}, got {args[arg]!r}")

    def is_int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if name == "bucketize":
        b = args["boundaries"]
        need(
            isinstance(b, list) and b and all(isinstance(x, int | float) for x in b) and b == sorted(set(b)),
            "boundaries",
            "a non-empty increasing list of numbers",
        )
    elif name == "hash_mod":
        need(is_int(args["buckets"]) and args["buckets"] >= 1, "buckets", "an integer >= 1")
    elif name == "categorify":
        need(
            is_int(args["freq_threshold"]) and args["freq_threshold"] >= 1,
            "freq_threshold",
            "an integer >= 1",
        )
        need(isinstance(args["shared"], list), "shared", "a list of column lists")
    elif name == "target_encode":
        check([args["target"]], "target")
        need(is_int(args["folds"]) and args["folds"] >= 2, "folds", "an integer >= 2")
        need(
            isinstance(args["smoothing"], int | float) and args["smoothing"] >= 0,
            "smoothing",
            "a number >= 0",
        )
    elif name == "time_features":
        need(args["unit"] in TIME_UNITS, "unit", f"one of {sorted(TIME_UNITS)}")
        need(
            isinstance(args["features"], list)
            and args["features"]
            and set(args["features"]) <= set(TIME_FEATURES),
            "features",
            f"a non-empty list of {sorted(TIME_FEATURES)}",
        )
    elif name == "join":
        args["keys"] = list(check(args["keys"], "keys"))
        need(
            isinstance(args["columns"], list) and args["columns"],
            "columns",
            "a non-empty list of side-table columns",
        )
        if side_tables is not None:
            need(
                args["table"] in side_tables, "table", f"a side table of the data set: {sorted(side_tables)}"
            )
            have = side_tables[args["table"]]
            absent = [c for c in [*args["keys"], *args["columns"]] if c not in have]
            if absent:
                raise ValueError(
                    f"{key}.columns: side table {args['table']!r} has no columns {absent}; it has {have}"
                )
    elif name == "sequence_history":
        for arg in ("user", "item", "time"):
            args[arg] = check([args[arg]], arg)[0]
        args["columns"] = list(check(args["columns"] or [args["item"]], "columns"))
        need(is_int(args["max_len"]) and args["max_len"] >= 1, "max_len", "an integer >= 1")
    elif name == "negative_sample":
        args["item"] = check([args["item"]], "item")[0]
        if args["label"] is None:
            need(
                len(groups.get("label", [])) == 1, "label", "a label column (the data set has no single one)"
            )
            args["label"] = groups["label"][0]
        args["label"] = check([args["label"]], "label")[0]
        need(
            isinstance(args["item_columns"], list), "item_columns", "a list of columns that describe the item"
        )
        args["item_columns"] = list(check(args["item_columns"], "item_columns"))
        need(
            not {args["item"], args["label"]} & set(args["item_columns"]),
            "item_columns",
            "columns other than the item and the label",
        )
        need(is_int(args["ratio"]) and args["ratio"] >= 1, "ratio", "an integer >= 1")
        need(is_int(args["seed"]) and args["seed"] >= 0, "seed", "an integer >= 0")


def _outputs(name: str, args: dict, columns: tuple[str, ...]) -> dict[str, list[str]]:
    """The columns an op adds, by the group they join."""
    if name == "time_features":
        return {args["group"]: [f"{c}_{f}" for c in columns for f in args["features"]]}
    if name == "join":
        return {args["group"]: list(args["columns"])}
    if name == "sequence_history":
        return {args["group"]: [f"hist_{c}" for c in args["columns"]]}
    return {}


def output_groups(ops: list[Op], groups: dict[str, list[str]]) -> dict[str, list[str]]:
    """The column groups after the pipeline ran: the data set's, plus what ops added."""
    groups = {k: list(v) for k, v in groups.items()}
    for op in ops:
        for group, new in _outputs(op.op, op.args, op.columns).items():
            groups.setdefault(group, [])
            groups[group] += [c for c in new if c not in groups[group]]
    return groups


def parse_split(spec: dict, groups: dict[str, list[str]], where: str = "recdp.split") -> Split:
    """Check `recdp.split`: {by: position, test_fraction, valid_fraction?} or
    {by: time, column, test_after, valid_after?}."""
    spec = dict(spec or {})
    by = spec.get("by")
    if by == "position":
        test, valid = spec.get("test_fraction"), spec.get("valid_fraction", 0)
        if (
            set(spec) - {"by", "test_fraction", "valid_fraction"}
            or not all(isinstance(f, int | float) for f in (test, valid))
            or not (0 < test < 1 and 0 <= valid and test + valid < 1)
        ):
            raise ValueError(
                f"{where}: expected by=position, 0 < test_fraction, 0 <= valid_fraction and a sum below 1, "
                f"got {spec}"
            )
        return Split("position", test_fraction=float(test), valid_fraction=float(valid))
    if by == "time":
        known = {c for cols in groups.values() for c in cols}
        valid_after = spec.get("valid_after")
        if (
            not {"by", "column", "test_after"} <= set(spec) <= {"by", "column", "test_after", "valid_after"}
            or not isinstance(spec["test_after"], int | float)
            or not (valid_after is None or isinstance(valid_after, int | float))
        ):
            raise ValueError(
                f"{where}: expected by=time with column, a number test_after and optionally a number "
                f"valid_after, got {spec}"
            )
        if valid_after is not None and not valid_after < spec["test_after"]:
            raise ValueError(f"{where}.valid_after: expected a value below test_after, got {spec}")
        if spec["column"] not in known:
            raise ValueError(
                f"{where}.column: unknown column {spec['column']!r}; the data set has {sorted(known)}"
            )
        return Split("time", column=spec["column"], test_after=spec["test_after"], valid_after=valid_after)
    raise ValueError(f"{where}.by: expected 'position' or 'time', got {by!r}")
