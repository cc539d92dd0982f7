"""The sweeper's `api` driver against a small stand-in SigOpt server on 127.0.0.1: it creates the experiment,
reports every observation against the suggestion it answers (the server refuses any other id), continues the
same experiment after a restart, and the API token reaches the server but is never written to the sweep
folder or the logs."""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

APP = str(Path(__file__).parent / "sigopt_app" / "app.py")
TOKEN = "tok-3f9a1c7e5b2d"


def suggestion_id(number: int) -> str:
    """Server ids that are neither job numbers nor positions, so a sweeper that sends those is caught."""
    return str(9000 + 37 * number)


class FakeSigOpt(BaseHTTPRequestHandler):
    """Just enough of SigOpt's REST API: experiments, random suggestions, observations.

    Like SigOpt, it keeps each suggestion's state: an observation must name (by id, and without assignments
    of its own) a suggestion that was served and is still open; it closes it. Anything else is a 400, and
    is kept in `rejected` so a test can say what was refused.
    """

    requests: list[dict] = []
    rejected: list[dict] = []
    suggestions: dict[str, dict] = {}  # id -> {"assignments", "state": open | observed | deleted}
    experiment: dict = {}
    rng = random.Random(0)
    lock = threading.Lock()

    @classmethod
    def reset(cls) -> None:
        cls.requests, cls.rejected, cls.suggestions, cls.experiment = [], [], {}, {}
        cls.rng = random.Random(0)

    def _reply(self, status: int, body: dict | None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, body: dict | None, message: str) -> None:
        FakeSigOpt.rejected.append({"body": body, "message": message})
        return self._reply(400, {"message": message})

    def _observe(self, body: dict | None) -> None:
        body = body or {}
        if "assignments" in body:
            return self._refuse(body, "an observation of a suggestion names the suggestion, not assignments")
        sid = body.get("suggestion")
        known = self.suggestions.get(str(sid)) if sid is not None else None
        if known is None:
            return self._refuse(body, f"no suggestion {sid!r} was served")
        if known["state"] != "open":
            return self._refuse(body, f"suggestion {sid} is {known['state']}, not open")
        if body.get("failed") is not True and not body.get("values"):
            return self._refuse(body, "an observation needs values or failed=true")
        known["state"] = "observed"
        return self._reply(200, dict(body, object="observation", id=str(len(self.requests))))

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        url = urlsplit(self.path)
        path, query = url.path, {k: v[-1] for k, v in parse_qs(url.query).items()}
        with self.lock:
            self.requests.append(
                {
                    "method": self.command,
                    "path": path,
                    "query": query,
                    "auth": self.headers.get("Authorization"),
                    "body": body,
                }
            )
            if self.command == "POST" and path == "/v1/experiments":
                FakeSigOpt.experiment = dict(body, id="7", object="experiment")
                return self._reply(200, FakeSigOpt.experiment)
            if self.command == "POST" and path == "/v1/experiments/7/suggestions":
                sid = suggestion_id(len(self.suggestions) + 1)
                assignments = {
                    p["name"]: self.rng.uniform(p["bounds"]["min"], p["bounds"]["max"])
                    for p in self.experiment["parameters"]
                }
                self.suggestions[sid] = {"assignments": assignments, "state": "open"}
                return self._reply(
                    200, {"object": "suggestion", "id": sid, "assignments": assignments, "state": "open"}
                )
            if self.command == "POST" and path == "/v1/experiments/7/observations":
                return self._observe(body)
            if self.command == "DELETE" and path == "/v1/experiments/7/suggestions":
                for known in self.suggestions.values():
                    if query.get("state") in (None, known["state"]) and known["state"] == "open":
                        known["state"] = "deleted"
                return self._reply(204, None)
            return self._reply(404, {"message": f"no route {self.command} {path}"})

    do_GET = do_POST = do_DELETE = _handle

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def server():
    FakeSigOpt.reset()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeSigOpt)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def sweep(folder: Path, api_url: str, budget: int, *overrides: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MY_SIGOPT_TOKEN=TOKEN)
    args = [
        sys.executable,
        APP,
        "-m",
        "hydra/sweeper=sigopt",
        f"hydra.sweep.dir={folder}",
        "hydra.sweeper.driver=api",
        f"hydra.sweeper.api_url={api_url}",
        "hydra.sweeper.token_env=MY_SIGOPT_TOKEN",
        f"hydra.sweeper.budget={budget}",
        *overrides,
    ]
    result = subprocess.run(args, cwd=folder.parent, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def journal(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "sigopt_observations.jsonl").read_text().splitlines()]


def assert_each_observation_answers_its_own_suggestion(folder: Path) -> list[dict]:
    """Every observation the server got names the suggestion whose values the journal's job ran, once each."""
    assert FakeSigOpt.rejected == []
    observed = [
        r["body"]
        for r in FakeSigOpt.requests
        if r["method"] == "POST" and r["path"] == "/v1/experiments/7/observations"
    ]
    kept = journal(folder)
    assert len(observed) == len(kept)
    ids = [sent["suggestion"] for sent in observed]
    assert len(set(ids)) == len(ids), "no suggestion answered twice"
    for sent, job in zip(observed, kept, strict=True):
        assert FakeSigOpt.suggestions[sent["suggestion"]]["assignments"] == job["assignments"]
        assert FakeSigOpt.suggestions[sent["suggestion"]]["state"] == "observed"
        if job["failed"]:
            assert sent == {"suggestion": sent["suggestion"], "failed": True}
        else:
            x, y = job["assignments"]["x"], job["assignments"]["y"]
            assert sent["values"] == [
                {"name": "score", "value": pytest.approx(1 - (x - 0.3) ** 2 - (y + 0.2) ** 2)}
            ]
    return observed


def call(server: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{server}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_fake_server_refuses_an_observation_that_answers_no_open_suggestion(server):
    """The check the sweeper tests rely on: a wrong, reused, deleted or missing id is a 400."""
    experiment = {"parameters": [{"name": "x", "type": "double", "bounds": {"min": 0.0, "max": 1.0}}]}
    assert call(server, "POST", "/v1/experiments", experiment)[0] == 200
    first = call(server, "POST", "/v1/experiments/7/suggestions")[1]["id"]
    second = call(server, "POST", "/v1/experiments/7/suggestions")[1]["id"]
    observe = "/v1/experiments/7/observations"
    values = [{"name": "score", "value": 0.5}]
    assert call(server, "POST", observe, {"suggestion": "1", "values": values})[0] == 400  # never served
    assert call(server, "POST", observe, {"values": values})[0] == 400  # no id at all
    assert call(server, "POST", observe, {"assignments": {"x": 0.1}, "values": values})[0] == 400
    assert call(server, "POST", observe, {"suggestion": first, "values": values})[0] == 200
    status, body = call(server, "POST", observe, {"suggestion": first, "failed": True})
    assert (status, body["message"]) == (400, f"suggestion {first} is observed, not open")
    assert call(server, "DELETE", "/v1/experiments/7/suggestions?state=open")[0] == 204
    status, body = call(server, "POST", observe, {"suggestion": second, "failed": True})
    assert (status, body["message"]) == (400, f"suggestion {second} is deleted, not open")
    assert len(FakeSigOpt.rejected) == 5


@pytest.mark.slow
def test_api_driver_answers_each_of_two_open_suggestions_by_its_own_id(tmp_path, server):
    """Two suggestions are open at once (a batch of two), some trials fail: each observation, failed or not,
    must name the suggestion its job ran, or SigOpt would fit its model to values at the wrong points."""
    folder = tmp_path / "sweep"
    sweep(folder, server, 6, "hydra.sweeper.parallel_bandwidth=2", "fail.mode=raise", "fail.above=0.0")
    observed = assert_each_observation_answers_its_own_suggestion(folder)
    kept = journal(folder)
    assert [o["job"] for o in kept] == list(range(6))
    assert any(o["failed"] for o in kept) and not all(o["failed"] for o in kept)
    assert [o["failed"] for o in kept] == [o["assignments"]["x"] > 0.0 for o in kept]
    # the server served them in pairs: both suggestions of a batch were open before either was answered
    served = [
        r for r in FakeSigOpt.requests if r["method"] == "POST" and r["path"].startswith("/v1/experiments/7/")
    ]
    kinds = ["s" if r["path"].endswith("suggestions") else "o" for r in served]
    assert "".join(kinds) == "ssoo" * 3
    assert [o["suggestion"] for o in observed] == [suggestion_id(n) for n in range(1, 7)]


@pytest.mark.slow
def test_api_driver_runs_and_restarts_the_experiment_and_never_writes_the_token(tmp_path, server):
    folder = tmp_path / "sweep"
    first = sweep(folder, server, 2)
    second = sweep(folder, server, 4)  # the same folder: a restart that continues the experiment

    created = [r for r in FakeSigOpt.requests if r["method"] == "POST" and r["path"] == "/v1/experiments"]
    assert len(created) == 1, "the restart continued the server's experiment"
    body = created[0]["body"]
    assert [p["name"] for p in body["parameters"]] == ["x", "y"]
    assert body["metrics"] == [{"name": "score", "objective": "maximize", "strategy": "optimize"}]
    assert body["observation_budget"] == 2
    deletes = [r for r in FakeSigOpt.requests if r["method"] == "DELETE"]
    assert [(r["path"], r["query"]) for r in deletes] == [
        ("/v1/experiments/7/suggestions", {"state": "open"})
    ], "the restart dropped the open suggestions once"
    assert len(assert_each_observation_answers_its_own_suggestion(folder)) == 4

    expected_auth = "Basic " + base64.b64encode(f"{TOKEN}:".encode()).decode()
    assert {r["auth"] for r in FakeSigOpt.requests} == {expected_auth}
    for path in folder.rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(errors="replace"), f"the token leaked into {path}"
    for result in (first, second):
        assert TOKEN not in result.stdout + result.stderr
