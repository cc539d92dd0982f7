"""Bad rows: what a reader refused, either raised at once (`bad_rows=error`) or counted (`bad_rows=skip`).

Every reader in `bluewhale.dataset` reports malformed input the same way, so nothing is dropped silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

MODES = ("error", "skip")
EXAMPLES = 5  # how many bad rows a report keeps to show a user


class BadRowError(ValueError):
    """A row of an input file does not have the published format."""


@dataclass
class BadRows:
    """What the reader refused: the count, and the first few (line number, reason) to show a user."""

    count: int = 0
    examples: list[tuple[int, str]] = field(default_factory=list)

    def __add__(self, other: BadRows) -> BadRows:
        return BadRows(self.count + other.count, (self.examples + other.examples)[:EXAMPLES])


def check_mode(bad_rows: str, key: str = "dataset.bad_rows") -> str:
    """Fail early on a `bad_rows` setting other than `error` or `skip`."""
    if bad_rows not in MODES:
        raise ValueError(f"{key} must be 'error' or 'skip', got {bad_rows!r}")
    return bad_rows


def settle(path: str | Path, problems: list[tuple[int, str]], bad_rows: str) -> BadRows:
    """Raise `file:line: reason` for the first problem (error mode), or count and log them (skip mode).

    In skip mode the examples keep the file name, since a data set may read many files.
    """
    if not problems:
        return BadRows()
    problems = sorted(problems)
    if bad_rows == "error":
        line, reason = problems[0]
        raise BadRowError(f"{path}:{line}: {reason}")
    name = Path(path).name
    report = BadRows(len(problems), [(line, f"{name}: {reason}") for line, reason in problems[:EXAMPLES]])
    log.warning("%s: skipped %d bad rows, e.g. %s", path, report.count, report.examples[:3])
    return report
