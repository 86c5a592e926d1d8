"""Nothing reaches the cluster without a durable record: a separate gateway process, killed mid-burst,
and a store that cannot write."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import World

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayProcess:
    """`kubegate serve` as its own process, on the world's cluster and issuer, with its own SQLite store."""

    def __init__(self, world: World, root: Path) -> None:
        self.root = root
        self.db = root / "kubegate.db"
        self.port = free_port()
        doc = yaml.safe_load(world.env.config_file.read_text())
        doc["listen"] = {"address": f"127.0.0.1:{self.port}"}
        doc["state_dir"] = str(root / "state")
        doc["store"] = {"url": f"sqlite:///{self.db}"}
        doc["policy_dirs"] = []
        self.config = root / "kubegate.yaml"
        self.config.write_text(yaml.safe_dump(doc))
        self.proc = subprocess.Popen([sys.executable, "-m", "kubegate", "serve", "--config", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.ctx: ssl.SSLContext | None = None
        self.url = f"https://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ca = root / "state" / "tls" / "ca.crt"
            if ca.exists():
                try:
                    self.ctx = ssl.create_default_context(cafile=str(ca))
                    with urllib.request.urlopen(self.url + "/readyz", context=self.ctx, timeout=2) as r:
                        if r.status == 200:
                            return
                except (OSError, urllib.error.URLError):
                    pass
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
            time.sleep(0.2)
        raise AssertionError("gateway did not become ready")

    def get(self, path: str, token: str) -> tuple[int, dict]:
        req = urllib.request.Request(f"{self.url}/k8s/sandbox{path}", headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def gateway(world: World, tmp_path: Path) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(world, tmp_path)
    try:
        yield gw
    finally:
        gw.stop()


def test_sigkill_during_a_burst_loses_no_request_event(world: World, gateway: GatewayProcess) -> None:
    marker = uuid.uuid4().hex[:12]
    token = world.token("burst", ("developers",))
    stop = threading.Event()

    def hammer(worker: int) -> None:
        i = 0
        while not stop.is_set():
            try:
                gateway.get(f"/api/v1/namespaces/default/configmaps?labelSelector=b%3D{marker}-{worker}-{i}", token)
            except (OSError, urllib.error.URLError, json.JSONDecodeError, http.client.HTTPException):
                return
            i += 1

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(marker in r.query_string for r in world.cluster.requests) < 40:
        time.sleep(0.05)
    os.kill(gateway.proc.pid, signal.SIGKILL)
    gateway.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(15)
    received = {r.query_string for r in world.cluster.requests if marker in r.query_string}
    assert len(received) >= 40
    with sqlite3.connect(gateway.db) as db:
        recorded = [row[0] for row in db.execute("SELECT data FROM events WHERE type = 'request'")]
    recorded_text = "\n".join(recorded)
    missing = [q for q in received if q.split("b%3D", 1)[1].split("&")[0] not in recorded_text]
    assert not missing, f"{len(missing)} requests reached the cluster without a request event: {missing[:3]}"


def test_a_store_that_cannot_write_refuses_with_503_and_forwards_nothing(world: World,
                                                                         gateway: GatewayProcess) -> None:
    token = world.token("ro", ("developers",))
    assert gateway.get("/api/v1/namespaces/default/configmaps", token)[0] == 200
    marker = uuid.uuid4().hex[:12]
    subprocess.run(["chattr", "+i", str(gateway.db)], check=True)
    try:
        status, body = gateway.get(f"/api/v1/namespaces/default/configmaps?labelSelector=m%3D{marker}", token)
        with pytest.raises(urllib.error.HTTPError) as ready:
            urllib.request.urlopen(gateway.url + "/readyz", context=gateway.ctx, timeout=10)
        assert ready.value.code == 503 and "store" in json.loads(ready.value.read())["checks"]
    finally:
        subprocess.run(["chattr", "-i", str(gateway.db)], check=True)
    with urllib.request.urlopen(gateway.url + "/readyz", context=gateway.ctx, timeout=10) as r:
        assert r.status == 200
    assert status == 503 and body["kind"] == "Status"
    assert "cannot record this request, so it was not forwarded" in body["message"]
    assert not [r for r in world.cluster.requests if marker in r.query_string]
