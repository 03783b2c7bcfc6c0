"""Two service replicas on one PostgreSQL store (issue 11, acceptance 4).

An event posted to one replica shows in the other's recommendations within a second, a new
item likewise; a SIGKILL of a replica during an event burst loses no acknowledged event.
"""
from __future__ import annotations

import base64
import io
import threading
import time

import httpx
import numpy as np
import pytest

from .conftest import API_KEY, theme_image
from .live import LiveServer
from .postgres import pg_dsn, pg_server  # noqa: F401  (fixtures)

pytest.importorskip("psycopg", reason="psycopg 3 is not installed: pip install 'fusionrec[dist]'")
AUTH = {"X-API-Key": API_KEY}


def _start(model_dir, dsn, tmp_path, name, encoders=False):
    server = LiveServer(model_dir, dsn, API_KEY, [] if encoders else ["--no-encoders"],
                        log=tmp_path / f"{name}.log")
    return server


def _wait(predicate, timeout: float) -> float | None:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if predicate():
            return time.perf_counter() - start
        time.sleep(0.02)
    return None


def test_events_and_items_cross_replicas_within_a_second(model_dir, pg_dsn, tmp_path, world):  # noqa: F811
    a = _start(model_dir, pg_dsn, tmp_path, "a", encoders=True)
    b = _start(model_dir, pg_dsn, tmp_path, "b")
    try:
        a.wait_ready(600), b.wait_ready(600)
        space = [i for i, t in world.item_theme.items() if t == "space"]
        with httpx.Client(headers=AUTH, timeout=10) as http:
            before = http.get(f"{b.url}/recommendations/replica-user", params={"k": 5})
            assert before.status_code == 404  # nobody has seen this user yet
            r = http.post(f"{a.url}/events", json={"events": [
                {"user_id": "replica-user", "item_id": i, "type": "purchase"} for i in space[:3]]})
            assert r.status_code == 200, r.text

            def online_on_b() -> bool:
                got = http.get(f"{b.url}/recommendations/replica-user", params={"k": 5})
                return got.status_code == 200 and got.json()["user_state"] == "online"

            seen_after = _wait(online_on_b, 1.0)
            assert seen_after is not None, "replica b did not see the event within 1 s"

            buf = io.BytesIO()
            theme_image("space", np.random.default_rng(5)).save(buf, format="PNG")
            r = http.post(f"{a.url}/items", json={"items": [{
                "item_id": "replica-new-film", "text": "An astronaut crew flies a starship to a far nebula.",
                "image_base64": base64.b64encode(buf.getvalue()).decode()}]}, timeout=300)  # first encode loads the models
            assert r.status_code == 200, r.text
            item_after = _wait(lambda: http.get(f"{b.url}/items/replica-new-film").status_code == 200, 1.0)
            assert item_after is not None, "replica b did not see the new item within 1 s"
            sims = [e["item_id"] for e in http.get(f"{b.url}/items/{space[0]}/similar", params={"k": 10}).json()["items"]]
            assert "replica-new-film" in sims

            # forgetting on one replica holds on the other: the online user is gone there too
            assert http.delete(f"{a.url}/users/replica-user").status_code == 200
            gone = _wait(lambda: http.get(f"{b.url}/recommendations/replica-user").status_code == 404, 1.0)
            assert gone is not None, "replica b still serves a user forgotten on replica a"
        (tmp_path / "freshness.txt").write_text(f"event {seen_after:.3f}s item {item_after:.3f}s\n")
    finally:
        a.stop(), b.stop()


def test_sigkill_of_a_replica_loses_no_acknowledged_event(model_dir, pg_dsn, tmp_path, world):  # noqa: F811
    import psycopg

    a = _start(model_dir, pg_dsn, tmp_path, "a")
    b = _start(model_dir, pg_dsn, tmp_path, "b")
    items = list(world.item_theme)
    acked: list[str] = []
    lock, stop = threading.Lock(), threading.Event()

    def client(url: str, worker: int) -> None:
        n = 0
        with httpx.Client(base_url=url, headers=AUTH, timeout=5.0) as http:
            while not stop.is_set():
                batch = [{"user_id": f"kill-{worker}-{n % 5}", "item_id": items[(n + j) % len(items)],
                          "type": "click", "event_id": f"k{worker}-{n}-{j}"} for j in range(3)]
                n += 1
                try:
                    r = http.post("/events", json={"events": batch})
                except httpx.HTTPError:
                    continue
                if r.status_code == 200:
                    with lock:
                        acked.extend(e["event_id"] for e in batch)

    try:
        a.wait_ready(600), b.wait_ready(600)
        threads = [threading.Thread(target=client, args=(srv.url, w)) for w, srv in enumerate([a, a, b, b])]
        for t in threads:
            t.start()
        _wait(lambda: len(acked) >= 200, 60)
        a.kill()  # in the middle of the burst; b goes on
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert len(acked) >= 200, "the burst was too slow to test anything"
        with psycopg.connect(pg_dsn) as conn:
            stored = {r[0] for r in conn.execute("SELECT event_id FROM events")}
        lost = set(acked) - stored
        assert not lost, f"{len(lost)} acknowledged events lost, e.g. {sorted(lost)[:5]}"
        # the surviving replica knows the killed one's users
        r = httpx.get(f"{b.url}/recommendations/kill-0-0", params={"k": 3}, headers=AUTH)
        assert r.status_code == 200 and r.json()["user_state"] == "online"
    finally:
        stop.set()
        a.kill(), b.stop()
