"""Stop signals: SIGTERM (Slurm's time limit or preemption), SIGINT (Ctrl-C) and SIGUSR2 (Slurm's
`--signal`, submitit's requeue signal) end a job cleanly instead of killing it mid-write.

During training a signal only asks to stop: the loop finishes its step, every rank agrees (the flag
rides in the gradient all-reduce), a checkpoint is written, and then the job ends with `Stopped`. Outside
training (processing, evaluation) a signal raises `Stopped` at once. Either way the MLflow run is marked
KILLED (tracking.job_run), and a handler that was there before ours (submitit's checkpoint-and-requeue)
still runs, after our checkpoint.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bluewhale.train.callbacks import Callback, TrainState

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)


class Stopped(Exception):
    """The job was stopped by a signal; a checkpoint (where one was written) lets it resume."""

    def __init__(self, signum: int, detail: str = "") -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}{detail}")


class _Watch:
    """What the installed handlers share: the first signal, and whether training will stop on it."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.graceful = False
        self.previous: dict[int, Any] = {}

    def handle(self, signum: int, frame: Any) -> None:
        first = self.signum is None
        self.signum = self.signum or signum
        if self.graceful and first:
            log.warning("%s: stopping after this training step", signal.Signals(signum).name)
            return
        raise Stopped(signum)


_watch: _Watch | None = None


@contextmanager
def stop_signals() -> Iterator[None]:
    """Handle the stop signals for the duration of a job (main thread only; elsewhere a no-op)."""
    global _watch
    if threading.current_thread() is not threading.main_thread() or _watch is not None:
        yield
        return
    watch = _Watch()
    watch.previous = {s: signal.signal(s, watch.handle) for s in SIGNALS}
    _watch = watch
    try:
        yield
    finally:
        for s, handler in watch.previous.items():
            signal.signal(s, handler)
        _watch = None


def requested() -> int | None:
    """The stop signal received so far, if any."""
    return _watch.signum if _watch else None


def stop(detail: str = "") -> None:
    """End the job after a graceful stop: run the handler that was there before ours, if it is a Python
    function (submitit requeues the job from its checkpoint and exits), else raise `Stopped`."""
    watch = _watch
    signum = watch.signum if watch else signal.SIGTERM
    previous = watch.previous.get(signum) if watch else None
    if callable(previous) and previous is not signal.default_int_handler:
        previous(signum, None)
    raise Stopped(signum, detail)


class StopOnSignal(Callback):
    """Turns a stop signal into `state.stop` at a point every rank reaches (after backward, before the
    gradient exchange), so all ranks stop after the same step."""

    def on_fit_start(self, state: TrainState) -> None:
        if _watch is not None:
            _watch.graceful = True

    def on_after_backward(self, state: TrainState) -> None:
        if requested() is not None:
            state.stop = True

    def on_fit_end(self, state: TrainState, result: Any) -> None:
        if _watch is not None:
            _watch.graceful = False
