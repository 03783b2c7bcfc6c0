"""Forgetting that holds on disk (issue 12, item 5): database, WAL and model versions, read as bytes."""
from __future__ import annotations

import time
from pathlib import Path

from .conftest import keyed_client, make_service

UID = "forget-me-7f3a9c2e"


def _files_with(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_item_5_forgotten_user_leaves_no_bytes_on_disk(model_dir, tmp_path, world):
    home = tmp_path / "serving"
    home.mkdir()
    svc = make_service(model_dir, home, retrain_overrides=["train.epochs=1"], keep_versions=3)
    items = list(world.item_theme)
    with keyed_client(svc) as client:   # `with`: the app's shutdown runs at the end, as under uvicorn
        events = [{"user_id": UID, "item_id": i, "event_id": f"{UID}-{n}"} for n, i in enumerate(items[:5])]
        events += [{"user_id": "stays", "item_id": i} for i in items[5:9]]
        assert client.post("/events", json={"events": events}).status_code == 200
        svc.retrain()
        svc.retrain()
        # sanity: the id is there to be found, in the database and in the retrained model files
        assert _files_with(home, UID.encode()), "the test cannot see the id it looks for"
        assert _files_with(svc.versions.root, UID.encode())
        r = client.delete(f"/users/{UID}")
        assert r.status_code == 200, r.text
        assert r.json()["retrain"] in ("started", "queued")
        deadline = time.time() + 120
        while time.time() < deadline and (svc.retrain_status["running"] or svc.retrain_status["pending"]):
            time.sleep(0.1)
        assert svc.retrain_status["error"] is None
        assert UID not in svc.state.user_index and "stays" in svc.state.user_index
        assert client.get(f"/recommendations/{UID}").status_code == 404
    left = _files_with(home, UID.encode())
    assert not left, f"the forgotten id is still on disk in {left}"
    assert not Path(str(svc.store.path) + "-wal").exists() or Path(str(svc.store.path) + "-wal").stat().st_size == 0
    # coming back after being forgotten is a new person, and the server restarts fine
    again = make_service(model_dir, home, use_retrained=True)
    assert UID not in again.state.user_index
    again.close()
