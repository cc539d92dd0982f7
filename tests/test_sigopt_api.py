"""The sweeper's `api` driver against a small stand-in SigOpt server on 127.0.0.1: it creates the experiment,
reports every observation against its suggestion, continues the same experiment after a restart, and the
API token reaches the server but is never written to the sweep folder or the logs."""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

APP = str(Path(__file__).parent / "sigopt_app" / "app.py")
TOKEN = "tok-3f9a1c7e5b2d"


class FakeSigOpt(BaseHTTPRequestHandler):
    """Just enough of SigOpt's REST API: experiments, random suggestions, observations."""

    requests: list[dict] = []
    experiment: dict = {}
    rng = random.Random(0)

    def _reply(self, status: int, body: dict | None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "auth": self.headers.get("Authorization"),
                "body": body,
            }
        )
        path = self.path.split("?")[0]
        if self.command == "POST" and path == "/v1/experiments":
            FakeSigOpt.experiment = dict(body, id="7", object="experiment")
            return self._reply(200, FakeSigOpt.experiment)
        if self.command == "POST" and path == "/v1/experiments/7/suggestions":
            number = sum(
                r["path"].startswith("/v1/experiments/7/suggestions") and r["method"] == "POST"
                for r in self.requests
            )
            assignments = {
                p["name"]: self.rng.uniform(p["bounds"]["min"], p["bounds"]["max"])
                for p in self.experiment["parameters"]
            }
            return self._reply(
                200, {"object": "suggestion", "id": str(number), "assignments": assignments, "state": "open"}
            )
        if self.command == "POST" and path == "/v1/experiments/7/observations":
            return self._reply(200, dict(body, object="observation", id=str(len(self.requests))))
        if self.command == "DELETE" and path == "/v1/experiments/7/suggestions":
            return self._reply(204, None)
        return self._reply(404, {"message": f"no route {self.command} {path}"})

    do_GET = do_POST = do_DELETE = _handle

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def server():
    FakeSigOpt.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeSigOpt)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def sweep(folder: Path, api_url: str, budget: int) -> subprocess.CompletedProcess:
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
    ]
    result = subprocess.run(args, cwd=folder.parent, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_api_driver_runs_and_restarts_the_experiment_and_never_writes_the_token(tmp_path, server):
    folder = tmp_path / "sweep"
    first = sweep(folder, server, budget=2)
    second = sweep(folder, server, budget=4)  # the same folder: a restart that continues the experiment

    created = [r for r in FakeSigOpt.requests if r["method"] == "POST" and r["path"] == "/v1/experiments"]
    assert len(created) == 1, "the restart continued the server's experiment"
    body = created[0]["body"]
    assert [p["name"] for p in body["parameters"]] == ["x", "y"]
    assert body["metrics"] == [{"name": "score", "objective": "maximize", "strategy": "optimize"}]
    assert body["observation_budget"] == 2
    assert any(r["method"] == "DELETE" for r in FakeSigOpt.requests), "open suggestions dropped on restart"

    observed = [r["body"] for r in FakeSigOpt.requests if r["path"] == "/v1/experiments/7/observations"]
    journal = [json.loads(line) for line in (folder / "sigopt_observations.jsonl").read_text().splitlines()]
    assert len(observed) == len(journal) == 4
    for sent, kept in zip(observed, journal, strict=True):
        x, y = kept["assignments"]["x"], kept["assignments"]["y"]
        assert sent["values"] == [
            {"name": "score", "value": pytest.approx(1 - (x - 0.3) ** 2 - (y + 0.2) ** 2)}
        ]

    expected_auth = "Basic " + base64.b64encode(f"{TOKEN}:".encode()).decode()
    assert {r["auth"] for r in FakeSigOpt.requests} == {expected_auth}
    for path in folder.rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(errors="replace"), f"the token leaked into {path}"
    for result in (first, second):
        assert TOKEN not in result.stdout + result.stderr
