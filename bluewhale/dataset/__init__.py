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

Engines: pandas calls `read()`; Modin's workers read a `CriteoFile` in byte ranges (`chunks()`,
`read_chunk()`) and call `read()` for the rest. The Spark engine reads every format here itself
(`bluewhale/engine/spark_readers/`, one module per format) with the same bad-row policy (`bad_rows`
attribute), messages and line numbers; any other data set is read with `read()` on the driver and handed
to Spark. Either way rows keep file order.
"""
