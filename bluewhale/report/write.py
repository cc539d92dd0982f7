"""Make a report: select the runs, render the page, take its PNG, publish both at once (temp names, then
renamed, so a failure leaves nothing half-made), and log them to a sweep's parent run."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient

from bluewhale.report import browser, page
from bluewhale.report.runs import select

log = logging.getLogger(__name__)
WIDTH = 1400
ARTIFACT_DIR = "report"


def write_report(
    target: str,
    tracking_uri: str,
    out: Path,
    *,
    metric: str = "test_auc",
    cost: str = "train_time_s",
    png: bool = True,
    log_to_parent: bool = True,
) -> list[Path]:
    """Write `out` (HTML) and, with `png`, `out` with .png beside it; return what was written.

    A sweep's report is also logged to its parent run under `report/`."""
    client = MlflowClient(tracking_uri=tracking_uri)
    selection = select(target, client, metric)
    text = page.render(selection, metric, cost)
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    made: dict[Path, Path] = {}  # final path -> temp path
    try:
        html_tmp = _temp_beside(out)
        html_tmp.write_text(text, encoding="utf-8")
        made[out] = html_tmp
        if png:
            if browser.find() is None:
                log.warning("no PNG of the report: Chromium is not installed (apt-get install -y chromium)")
            else:
                png_tmp = _temp_beside(out.with_suffix(".png"))
                browser.screenshot(
                    html_tmp.as_uri(), png_tmp, WIDTH, page.page_height(selection), wait_ms=1000
                )
                made[out.with_suffix(".png")] = png_tmp
    except BaseException:
        for tmp in made.values():
            tmp.unlink(missing_ok=True)
        raise
    for final, tmp in made.items():
        os.replace(tmp, final)
    written = list(made)
    if log_to_parent and selection.parent_run_id:
        for path in written:
            client.log_artifact(selection.parent_run_id, str(path), ARTIFACT_DIR)
        log.info("report logged to run %s under %s/", selection.parent_run_id, ARTIFACT_DIR)
    return written


def _temp_beside(path: Path) -> Path:
    """A fresh temp file in the target's folder (so the final rename is atomic), keeping its suffix."""
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # as an ordinary file would be, not mkstemp's owner-only
    return Path(name)
