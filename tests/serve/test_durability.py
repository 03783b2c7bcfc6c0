"""Acceptance 3: SIGKILL the server in the middle of a burst of event posts; no acknowledged event is lost."""
from __future__ import annotations

import sqlite3
import threading
import time

import httpx
import pytest

from .conftest import API_KEY
from .live import LiveServer


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_event(model_dir, tmp_path, world):
    db = tmp_path / "events.sqlite3"
    server = LiveServer(model_dir, db, API_KEY, ["--no-encoders"])
    items = list(world.item_theme)
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[str] = []

    def client(worker: int) -> None:
        n = 0
        with httpx.Client(base_url=server.url, headers={"X-API-Key": API_KEY}, timeout=5.0) as http:
            while not stop.is_set():
                batch = [{"user_id": f"burst-{worker}-{n % 7}", "item_id": items[(n + j) % len(items)],
                          "type": "click", "event_id": f"w{worker}-b{n}-e{j}"} for j in range(3)]
                n += 1
                try:
                    r = http.post("/events", json={"events": batch})
                except httpx.HTTPError:
                    continue  # the server died mid-request: not acknowledged, may or may not be stored
                if r.status_code == 200:
                    with lock:
                        acked.extend(e["event_id"] for e in batch)
                else:
                    errors.append(f"{r.status_code} {r.text[:200]}")

    try:
        server.wait_ready()
        threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        # kill in the middle of the burst: after some acknowledgements, with requests in flight
        deadline = time.time() + 60
        while len(acked) < 300 and time.time() < deadline:
            time.sleep(0.01)
        server.kill()
        n_acked_at_kill = len(acked)
        stop.set()
        for t in threads:
            t.join(timeout=30)
    finally:
        stop.set()
        server.kill()
    assert not errors, errors[:3]
    assert n_acked_at_kill >= 300, "the burst was too slow to test anything"

    restarted = LiveServer(model_dir, db, API_KEY, ["--no-encoders"])
    try:
        restarted.wait_ready()
        with sqlite3.connect(db) as conn:
            stored = {r[0] for r in conn.execute("SELECT event_id FROM events")}
        lost = set(acked) - stored
        assert not lost, f"{len(lost)} acknowledged events lost, e.g. {sorted(lost)[:5]}"
        # the restarted server replayed them into online state: the burst users are servable
        health = httpx.get(restarted.url + "/health").json()
        assert health["events_ingested"] == len(stored) >= len(acked)
        r = httpx.get(restarted.url + "/recommendations/burst-0-0", params={"k": 5}, headers={"X-API-Key": API_KEY})
        assert r.status_code == 200 and r.json()["user_state"] == "online"
    finally:
        restarted.stop()
