"""Nothing reaches the cluster without a durable record: a separate gateway process, killed mid-burst,
and a store that cannot write."""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import World
from tests.e2e.gateways import GatewayProcess

pytestmark = pytest.mark.e2e


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

    mark = world.control.audit_mark()
    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(world.reached(marker, mark)) < 40:
        time.sleep(0.05)
    os.kill(gateway.proc.pid, signal.SIGKILL)
    gateway.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(15)
    received = {e.uri for e in world.reached(marker, mark)}
    assert len(received) >= 40
    with sqlite3.connect(gateway.db) as db:
        recorded = [row[0] for row in db.execute("SELECT data FROM events WHERE type = 'request'")]
    recorded_text = "\n".join(recorded)
    missing = [q for q in received if q.split("b%3D", 1)[1].split("&")[0] not in recorded_text]
    assert not missing, f"{len(missing)} requests reached the cluster without a request event: {missing[:3]}"


def test_a_store_that_cannot_write_refuses_with_503_and_forwards_nothing(world: World, gateway: GatewayProcess) -> None:
    token = world.token("ro", ("developers",))
    assert gateway.get("/api/v1/namespaces/default/configmaps", token)[0] == 200
    marker = uuid.uuid4().hex[:12]
    mark = world.control.audit_mark()
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
    assert not world.reached(marker, mark)
