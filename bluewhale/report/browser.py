"""Headless Chromium (the Debian package `chromium`): a PNG of a page, or its DOM after its scripts ran.
Each call gets its own fresh profile folder and no network services, so it runs offline and in parallel."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",  # runs as root in containers and CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def find() -> str | None:
    """The Chromium binary on PATH, or None."""
    return next((path for name in NAMES if (path := shutil.which(name))), None)


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    binary = find()
    if binary is None:
        raise FileNotFoundError("no headless browser: install Chromium (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="bluewhale-chromium-") as profile:
        result = subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if result.returncode != 0:
        raise RuntimeError(f"chromium failed ({result.returncode}): {result.stderr[-800:]}")
    return result


def screenshot(url: str, out: Path, width: int, height: int, wait_ms: int = 0, timeout: float = 180) -> Path:
    """A PNG of `url` at `width` x `height`; `wait_ms` of virtual time lets a JS app render first."""
    extra = [f"--virtual-time-budget={wait_ms}"] if wait_ms else []
    _run([f"--screenshot={out}", f"--window-size={width},{height}", *extra, url], timeout)
    if not out.exists() or out.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot of {url}")
    return out


def dom(url: str, wait_ms: int = 2000, timeout: float = 180) -> str:
    """The page's DOM as HTML once its scripts ran."""
    return _run([f"--virtual-time-budget={wait_ms}", "--dump-dom", url], timeout).stdout
