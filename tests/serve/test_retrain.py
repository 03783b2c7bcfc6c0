"""Full retrain on stored events, swapped in without downtime."""
from __future__ import annotations

import threading
import time

import numpy as np
from fastapi.testclient import TestClient

from fusionrec.serve.app import create_app
from fusionrec.serve.security import KeyChecker

from .conftest import API_KEY, make_service

AUTH = {"X-API-Key": API_KEY}


def test_retrain_swaps_without_downtime_and_learns_the_new_events(model_dir, tmp_path, world):
    svc = make_service(model_dir, tmp_path, retrain_overrides=["train.epochs=2"], retrain_after_forget=False)
    client = TestClient(create_app(svc, KeyChecker({API_KEY: "admin"})), headers=AUTH)
    space = [i for i, t in world.item_theme.items() if t == "space"]
    user = [u for u, t in world.user_theme.items() if t == "horror"][0]
    r = client.post("/events", headers=AUTH, json={"events": [
        {"user_id": "fresh-user", "item_id": i} for i in space[:4]] + [{"user_id": user, "item_id": space[0]}]})
    assert r.status_code == 200
    forgotten = [u for u, t in world.user_theme.items() if t == "cooking"][0]
    assert client.delete(f"/users/{forgotten}", headers=AUTH).status_code == 200
    old_state = svc.state

    # readers hammer the service for the whole retrain; every request must succeed
    stop = threading.Event()
    statuses: list[int] = []
    versions: set[int] = set()

    def reader() -> None:
        while not stop.is_set():
            resp = client.get(f"/recommendations/{user}", params={"k": 5})
            statuses.append(resp.status_code)
            if resp.status_code == 200:
                versions.add(resp.json()["model_version"])

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        result = svc.retrain()
        # a few more requests after the swap
        for _ in range(5):
            statuses.append(client.get(f"/recommendations/{user}", params={"k": 5}).status_code)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert statuses and set(statuses) == {200}, set(statuses)
    assert result["model_version"] == old_state.version + 1 == svc.state.version
    assert svc.state is not old_state and 1 in versions
    new = svc.state
    # the new model was trained on the stored events: the fresh user now has a trained vector,
    # the forgotten user is gone from the model, and the learned events left the online buffer
    assert "fresh-user" in new.user_index and forgotten not in new.user_index
    assert svc.online.history("fresh-user") == [] and new.trained_upto_seq == svc.store.max_seq()
    assert client.get("/recommendations/fresh-user").status_code == 200
    assert client.get(f"/recommendations/{forgotten}").status_code == 404
    assert new.model_dir != old_state.model_dir and new.version_name == "v2"
    assert (svc.versions.root / "CURRENT").read_text().strip() == "v2"
    # the old state object is untouched (in-flight requests could still finish on it)
    assert old_state.catalogue.n_items == new.catalogue.n_items and old_state.index is not new.index

    # the same through HTTP: POST /admin/retrain starts it in the background, GET reports it
    assert client.post("/admin/retrain", headers={"X-API-Key": ""}).status_code == 401
    r = client.post("/admin/retrain", headers=AUTH)
    assert r.status_code == 202 and r.json()["started"] is True
    deadline = time.time() + 120
    while client.get("/admin/retrain").json()["running"] and time.time() < deadline:
        time.sleep(0.1)
    status = client.get("/admin/retrain").json()
    assert status["count"] == 2 and status["error"] is None and svc.state.version == new.version + 1


def test_swap_applies_items_posted_during_the_build(model_dir, tmp_path, world, encoder):
    svc = make_service(model_dir, tmp_path, encoder=encoder)
    from fusionrec.serve.loader import load_state

    side = load_state(svc.state.model_dir, svc.cfg, svc.store)    # built "off to the side"
    client = TestClient(create_app(svc, KeyChecker([API_KEY])), headers=AUTH)
    r = client.post("/items", headers=AUTH, json={"items": [
        {"item_id": "late-item", "text": "A zombie outbreak in a graveyard.", "attributes": {"genres": "Horror"}}]})
    assert r.status_code == 200, r.text
    assert "late-item" not in side.catalogue.index_of
    svc.swap(side)
    assert svc.state is side and "late-item" in side.catalogue.index_of
    row = side.catalogue.index_of["late-item"]
    assert np.linalg.norm(side.item_vectors[row]) > 0
