"""SigOpt behind two verbs, `ask(k)` and `tell(...)`, for the in-process lite driver and for a SigOpt server."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy
from threadpoolctl import threadpool_limits

from ._experiment import RecipeError

log = logging.getLogger(__name__)

if not hasattr(numpy, "product"):  # sigoptlite/libsigopt call numpy.product, removed in numpy 2
    numpy.product = numpy.prod
logging.getLogger("libsigopt").setLevel(logging.WARNING)  # it logs every model input and output at INFO


@dataclass
class Suggestion:
    id: str | None
    assignments: dict[str, Any]


def _values(values: dict[str, float]) -> list[dict[str, Any]]:
    return [{"name": name, "value": value} for name, value in values.items()]


@contextmanager
def seeded_global_numpy(seed: int | None, number: int) -> Iterator[None]:
    """Run a block with numpy's global generator (all libsigopt draws from) seeded from `(seed, number)`.

    The state comes from `SeedSequence([seed, number])`, so each observation number of each seed gets its own
    independent stream: seed 1 does not replay seed 0 a few places on, and observation n of a seed is the same
    however the sweep got there (in one go, or restarted from its journal). The caller's global state is put
    back afterwards. With no seed the block draws from the global generator as it is (fresh each process).
    """
    if seed is None:
        yield
        return
    saved = numpy.random.get_state()
    sequence = numpy.random.SeedSequence([int(seed) % 2**64, number])  # SeedSequence takes non-negative words
    numpy.random.set_state(numpy.random.RandomState(numpy.random.MT19937(sequence)).get_state())
    try:
        yield
    finally:
        numpy.random.set_state(saved)


class LiteOptimizer:
    """sigoptlite keeps its experiment in memory and serves one open suggestion at a time.

    So each batch builds a fresh experiment, replays every stored observation into it (this is also how a
    restarted sweep continues), and fills the batch by marking each suggestion as a failed placeholder
    before asking for the next, so the model steers away from points already handed out.
    """

    def __init__(self, body: dict[str, Any], history: list[dict[str, Any]], seed: int | None) -> None:
        self.body = dict(body, parallel_bandwidth=1)  # sigoptlite refuses anything else
        self.history = [(o["assignments"], None if o["failed"] else o["values"]) for o in history]
        self.seed = seed
        self._experiment()  # fail on a bad recipe now, before any trial runs

    def _experiment(self) -> Any:
        import sigopt

        conn = sigopt.Connection(driver="lite")
        try:
            experiment = conn.experiments().create(**self.body)
        except Exception as err:  # sigoptlite says what it refuses in the message
            raise RecipeError(f"SigOpt refused the experiment: {err}") from err
        for assignments, values in self.history:
            if values is None:
                conn.experiments(experiment.id).observations().create(assignments=assignments, failed=True)
            else:
                conn.experiments(experiment.id).observations().create(
                    assignments=assignments, values=_values(values)
                )
        return conn.experiments(experiment.id)

    def ask(self, count: int) -> list[Suggestion]:
        # one BLAS thread: the model's small solves get slower, not faster, with more (measured 6x on 2 cores)
        with threadpool_limits(1):
            experiment = self._experiment()
            out = []
            for i in range(count):
                # libsigopt draws from numpy's global generator: seed it per suggestion, by observation number
                with seeded_global_numpy(self.seed, len(self.history) + i):
                    suggestion = experiment.suggestions().create()
                out.append(Suggestion(suggestion.id, dict(suggestion.assignments)))
                if i < count - 1:
                    experiment.observations().create(suggestion=suggestion.id, failed=True)
        return out

    def tell(self, suggestion: Suggestion, values: dict[str, float] | None) -> None:
        self.history.append((suggestion.assignments, values))


class ApiOptimizer:
    """A SigOpt server at `api_url`; the token comes from the environment and stays in this object only."""

    def __init__(self, body: dict[str, Any], api_url: str, token_env: str, state: dict[str, Any]) -> None:
        import sigopt

        token = os.environ.get(token_env)
        if not token:
            raise RecipeError(
                f"driver api: set the environment variable {token_env} to your SigOpt API token"
            )
        self.conn = sigopt.Connection(client_token=token, driver="http")
        self.conn.set_api_url(api_url)
        if state.get("experiment_id") is None:
            state["experiment_id"] = str(self.conn.experiments().create(**body).id)
            log.info("SigOpt experiment %s created at %s", state["experiment_id"], api_url)
        else:  # a restart: suggestions handed to jobs that never reported are dropped, then asked again
            self.conn.experiments(state["experiment_id"]).suggestions().delete(state="open")
        self.experiment = self.conn.experiments(state["experiment_id"])

    def ask(self, count: int) -> list[Suggestion]:
        out = []
        for _ in range(count):
            suggestion = self.experiment.suggestions().create()
            out.append(Suggestion(str(suggestion.id), dict(suggestion.assignments)))
        return out

    def tell(self, suggestion: Suggestion, values: dict[str, float] | None) -> None:
        if values is None:
            self.experiment.observations().create(suggestion=suggestion.id, failed=True)
        else:
            self.experiment.observations().create(suggestion=suggestion.id, values=_values(values))
