"""Data sets: readers for the published formats, and planted synthetic twins that write those formats.

A data set (built by `dataset=<name>`) offers what the `process` stage uses:
- column groups as attributes (`label`, `dense`, `sparse`, and where the format has them `sequence`,
  `timestamp`, `published`, `user`, `item`, `group`, `day`; `labels` for several tasks), all of them by `groups()`;
- `prepare()` (a synthetic set writes its files here), `fingerprint()` (path, size and mtime of every
  input file: the processing cache's input key);
- `read() -> (pyarrow.Table, BadRows)`: rows in file order; malformed rows stop the read with
  `file:line: reason` (`bad_rows=error`) or are dropped and counted (`bad_rows=skip`);
- `side_tables() -> {name: pyarrow.Table}` to join, and `planted_probability()` (None for real data).
Times are int64 numbers since 1970 (seconds, or milliseconds where the format has them).

Engines: pandas and Modin call `read()`. The Spark engine reads Criteo TSV itself (`CriteoFile`: its
`path`; `CriteoDays`: `files()`, with the day number from each file name), with the same bad-row policy
(`bad_rows` attribute) and line numbers; any other data set is read with `read()` on the driver and
handed to Spark (fine for small inputs; a format becomes native by adding a reader in
`bluewhale/engine/spark_readers.py`). Either way rows keep file order and side tables are Arrow tables.
"""
