"""The HTTP API end to end (in-process ASGI client) on the planted themed world."""
from __future__ import annotations

import base64
import io
import os

import numpy as np
import pytest
from fastapi.testclient import TestClient

from fusionrec.serve.app import create_app
from fusionrec.serve.loader import training_dataset
from fusionrec.serve.security import KeyChecker

from .conftest import API_KEY, make_service, theme_image

AUTH = {"X-API-Key": API_KEY}
NO_KEY = {"X-API-Key": ""}


@pytest.fixture
def service(model_dir, tmp_path, encoder):
    svc = make_service(model_dir, tmp_path, encoder=encoder, max_body_bytes=2_000_000, retrain_after_forget=False)
    yield svc
    svc.store.close()


@pytest.fixture
def client(service):
    # an admin key on every request (reads need a key too); NO_KEY takes it off one request
    return TestClient(create_app(service, KeyChecker({API_KEY: "admin"})), raise_server_exceptions=False,
                      headers=AUTH)


@pytest.fixture(scope="module")
def shared_client(model_dir, tmp_path_factory, encoder):
    """One service for the many requests that must be rejected (they change nothing)."""
    svc = make_service(model_dir, tmp_path_factory.mktemp("rejects"), encoder=encoder, max_body_bytes=2_000_000)
    yield TestClient(create_app(svc, KeyChecker({API_KEY: "admin"})), raise_server_exceptions=False, headers=AUTH)
    svc.store.close()


def themed_users(world, theme):
    return [u for u, t in world.user_theme.items() if t == theme]


def themed_items(world, theme):
    return [i for i, t in world.item_theme.items() if t == theme]


def test_recommendations_follow_taste_and_exclude_seen(client, world, service):
    user = themed_users(world, "cooking")[0]
    r = client.get(f"/recommendations/{user}", params={"k": 5})
    assert r.status_code == 200, r.text
    items = [e["item_id"] for e in r.json()["items"]]
    assert len(items) == 5
    assert all(world.item_theme[i] == "cooking" for i in items)
    seen = set(world.dataset.interactions.query(f"user == {world.dataset.user_index(user)}")["item"]
               .map(lambda j: str(world.dataset.item_ids[j])))
    assert not seen & set(items)
    r = client.get(f"/recommendations/{user}", params={"k": 20, "exclude_seen": "false"})
    assert seen & {e["item_id"] for e in r.json()["items"]}


def test_filters_still_return_k(client, world):
    user = themed_users(world, "space")[0]
    # the user prefers space films but asks for horror only: every answer must be horror, and k of them
    r = client.get(f"/recommendations/{user}", params={"k": 10, "filters": "genres:Horror"})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 10
    assert all(world.item_theme[e["item_id"]] == "horror" for e in items)
    r = client.get(f"/recommendations/{user}", params={"k": 5, "filters": "genres:Sport;year>=2000"})
    years = world.dataset.items.set_index("item_id")["year"]
    assert all(years[e["item_id"]] >= 2000 and world.item_theme[e["item_id"]] == "football"
               for e in r.json()["items"])
    bad = client.get(f"/recommendations/{user}", params={"filters": "colour:red"})
    assert bad.status_code == 422 and bad.json()["field"] == "filters"


def test_similar_items_share_the_theme(client, world):
    item = themed_items(world, "football")[0]
    r = client.get(f"/items/{item}/similar", params={"k": 5})
    assert r.status_code == 200
    got = [e["item_id"] for e in r.json()["items"]]
    assert item not in got and all(world.item_theme[i] == "football" for i in got)


def test_anonymous_by_items_and_by_text(client, world):
    horror = themed_items(world, "horror")[:3]
    r = client.post("/recommendations", json={"items": horror, "k": 5})
    assert r.status_code == 200, r.text
    got = [e["item_id"] for e in r.json()["items"]]
    assert not set(horror) & set(got) and all(world.item_theme[i] == "horror" for i in got)
    r = client.post("/recommendations", json={"text": "a goalkeeper saves a penalty in the world cup final", "k": 5})
    assert r.status_code == 200, r.text
    got = [e["item_id"] for e in r.json()["items"]]
    assert sum(world.item_theme[i] == "football" for i in got) >= 4
    assert client.post("/recommendations", json={"k": 5}).status_code == 422


def test_events_move_recommendations_toward_new_interests(client, world, service):
    user = themed_users(world, "space")[1]
    before = [e["item_id"] for e in client.get(f"/recommendations/{user}", params={"k": 10}).json()["items"]]
    assert all(world.item_theme[i] == "space" for i in before[:5])
    assert sum(world.item_theme[i] == "cooking" for i in before) <= 2
    cooking = themed_items(world, "cooking")[:4]
    r = client.post("/events", headers=AUTH, json={"events": [
        {"user_id": user, "item_id": i, "type": "purchase"} for i in cooking]})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 4
    body = client.get(f"/recommendations/{user}", params={"k": 10}).json()
    after = [e["item_id"] for e in body["items"]]
    assert body["user_state"] == "trained+online"
    n_cooking = sum(world.item_theme[i] == "cooking" for i in after)
    assert n_cooking >= 5, after               # moved toward what was just bought
    assert not set(cooking) & set(after)       # and the bought items count as seen
    # a brand-new user is served from events alone
    r = client.post("/events", headers=AUTH, json={"events": [
        {"user_id": "newcomer", "item_id": i, "type": "click"} for i in themed_items(world, "horror")[:2]]})
    assert r.status_code == 200
    got = client.get("/recommendations/newcomer", params={"k": 5}).json()
    assert got["user_state"] == "online"
    assert all(world.item_theme[e["item_id"]] == "horror" for e in got["items"])


def test_explain_and_profiles(client, world):
    user = themed_users(world, "horror")[0]
    item = client.get(f"/recommendations/{user}", params={"k": 1}).json()["items"][0]["item_id"]
    r = client.get(f"/explain/{user}/{item}")
    assert r.status_code == 200
    ex = r.json()
    parts = ex["modality_contributions"]
    total = sum(parts[k] for k in ("text", "image", "intercept", "collaborative") if k in parts)
    assert total == pytest.approx(ex["score"], abs=1e-3)   # the decomposition is exact
    assert {"text", "image"} <= set(parts)
    assert ex["because_of"] and all(world.item_theme[b["item_id"]] == "horror" for b in ex["because_of"])
    prof = client.get(f"/users/{user}/profile").json()
    assert prof["top_attributes"]["genres"][0]["value"] == "Horror"
    assert prof["representative_items"] and set(prof["modality_drive"]) >= {"text", "image", "collaborative"}
    ip = client.get(f"/items/{item}").json()
    assert ip["attributes"]["genres"] == "Horror" and ip["modalities"] == {"text": True, "image": True}


def test_forget_user_removes_everything_and_is_excluded_from_retrain(client, world, service):
    user = themed_users(world, "football")[0]
    other = themed_users(world, "football")[1]
    events = {"events": [{"user_id": u, "item_id": themed_items(world, "space")[0]} for u in (user, other)]}
    assert client.post("/events", headers=AUTH, json=events).status_code == 200
    assert client.delete(f"/users/{user}", headers=NO_KEY).status_code == 401   # writes need the key
    r = client.delete(f"/users/{user}", headers=AUTH)
    assert r.status_code == 200 and r.json()["deleted_events"] == 1
    assert client.get(f"/recommendations/{user}").status_code == 404
    assert client.get(f"/users/{user}/profile").status_code == 404
    assert client.get(f"/explain/{user}/{themed_items(world, 'space')[0]}").status_code == 404
    assert list(service.store.events(user=user)) == []
    assert not service.online.has(user)
    assert client.delete(f"/users/{user}", headers=AUTH).status_code == 404
    # the retrain data has neither the user's training rows nor its events; the other user keeps both
    ds = training_dataset(service, service.store.max_seq())
    ids = [str(u) for u in ds.user_ids]
    assert user not in ids and other in ids
    other_rows = ds.interactions[ds.interactions["user"] == ids.index(other)]
    assert len(other_rows) == 5 + 1
    # the forgotten id survives a restart
    assert service.store.user_hash(user) in service.store.forgotten_users()


def test_health_and_metrics(client, world):
    client.get(f"/recommendations/{themed_users(world, 'space')[0]}")
    client.post("/events", headers=AUTH, json={"events": [
        {"user_id": "m1", "item_id": themed_items(world, "space")[0]}]})
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["n_items"] == len(world.item_theme) and h["index"] == "flat"
    text = client.get("/metrics").text
    assert 'fusionrec_requests_total{method="GET",route="/recommendations/{user_id}",status="200"} 1.0' in text
    assert "fusionrec_request_seconds_bucket" in text
    assert f"fusionrec_index_items {float(len(world.item_theme))}" in text
    assert "fusionrec_events_ingested_total 1.0" in text
    mem = [line for line in text.splitlines() if line.startswith("fusionrec_index_memory_bytes ")]
    assert mem and float(mem[0].split()[1]) > 0


@pytest.mark.parametrize("call", [
    lambda c, w: c.get("/recommendations/nobody"),
    lambda c, w: c.get("/items/nothing/similar"),
    lambda c, w: c.get("/items/nothing"),
    lambda c, w: c.get("/recommendations/u000", params={"k": 0}),
    lambda c, w: c.get("/recommendations/u000", params={"k": 100000}),
    lambda c, w: c.get("/recommendations/u000", params={"k": "ten"}),
    lambda c, w: c.get("/recommendations/u000", params={"exclude_seen": "maybe"}),
    lambda c, w: c.post("/events", headers={**AUTH, "content-type": "application/json"}, content=b"{not json"),
    lambda c, w: c.post("/events", headers=AUTH, json={"events": [{"user_id": "a", "item_id": "nope"}]}),
    lambda c, w: c.post("/events", headers=AUTH, json={"events": [{"user_id": "a", "item_id": "sp000", "type": "hug"}]}),
    lambda c, w: c.post("/events", headers=AUTH, json={"events": [{"user_id": ["a"], "item_id": "sp000"}]}),
    lambda c, w: c.post("/events", headers=AUTH, json={"events": []}),
    lambda c, w: c.post("/events", headers=AUTH, json={"events": [{"user_id": "a", "item_id": "sp000", "x": 1}]}),
    lambda c, w: c.post("/events", headers=AUTH, json=[1, 2]),
    lambda c, w: c.post("/recommendations", json={"items": ["nope"]}),
    lambda c, w: c.post("/recommendations", json={"items": ["sp000"], "k": -1}),
    lambda c, w: c.post("/items", headers=AUTH, json={"items": [{"item_id": "x", "image_base64": "!!notb64"}]}),
    lambda c, w: c.post("/items", headers=AUTH, json={"items": [{"item_id": "x",
                        "image_base64": base64.b64encode(b"GIF89a but not really an image").decode()}]}),
    lambda c, w: c.post("/items", headers=AUTH, json={"items": [{"item_id": "x", "attributes": {"a": [1]}}]}),
    lambda c, w: c.post("/items", headers=AUTH, json={"items": [{"item_id": "x"}]}),
    lambda c, w: c.get("/explain/u000/nothing"),
])
def test_bad_input_is_4xx_json_naming_the_field(shared_client, world, call):
    r = call(shared_client, world)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    body = r.json()
    assert body["error"] and "field" in body


def test_oversized_body_is_413(shared_client):
    client = shared_client
    big = {"events": [{"user_id": "a" * 200, "item_id": "sp000"}] * 9000}
    r = client.post("/events", headers=AUTH, json=big)
    assert r.status_code == 413 and r.json()["field"] == "body"

    def chunks():  # no Content-Length: the limit is enforced on the bytes that arrive
        for _ in range(300):
            yield b" " * 10_000
    r = client.post("/events", headers={**AUTH, "content-type": "application/json"}, content=chunks())
    assert r.status_code == 413


def test_write_endpoints_need_a_valid_key(client, world):
    ev = {"events": [{"user_id": "k", "item_id": themed_items(world, "space")[0]}]}
    assert client.post("/events", json=ev, headers=NO_KEY).status_code == 401
    assert client.post("/events", headers={"X-API-Key": API_KEY[:-1] + "X"}, json=ev).status_code == 401
    assert client.post("/items", json={"items": [{"item_id": "z", "text": "t"}]}, headers=NO_KEY).status_code == 401
    assert client.post("/events", headers=AUTH, json=ev).status_code == 200


def test_read_key_when_configured(model_dir, tmp_path, world):
    svc = make_service(model_dir, tmp_path, require_key_for_reads=True)
    c = TestClient(create_app(svc, KeyChecker([API_KEY])))
    user = themed_users(world, "space")[0]
    assert c.get(f"/recommendations/{user}").status_code == 401
    assert c.get(f"/recommendations/{user}", headers=AUTH).status_code == 200
    assert c.get("/health").status_code == 200


def test_image_paths_cannot_escape_the_media_root(client, world, tmp_path):
    outside = tmp_path / "secret.jpg"
    theme_image("space", np.random.default_rng(0)).save(outside)
    link = world.media_root / "images" / "link-out.jpg"
    if not link.exists():
        os.symlink(outside, link)
    for path in ("../secret.jpg", str(outside), "images/link-out.jpg", "images/../../secret.jpg"):
        r = client.post("/items", headers=AUTH, json={"items": [{"item_id": "esc", "text": "x", "image_path": path}]})
        assert r.status_code == 422, (path, r.text)
        assert r.json()["field"] == "items[0].image_path"
    assert "esc" not in client.app.state.service.state.catalogue.index_of
    # a path that stays inside is fine
    r = client.post("/items", headers=AUTH, json={"items": [{"item_id": "inside", "text": "A galaxy war film.",
                                                                "image_path": "images/sp000.jpg"}]})
    assert r.status_code == 200, r.text


def test_posted_items_survive_restart(model_dir, tmp_path, encoder, world):
    svc = make_service(model_dir, tmp_path, encoder=encoder)
    c = TestClient(create_app(svc, KeyChecker([API_KEY])))
    buf = io.BytesIO()
    theme_image("horror", np.random.default_rng(3)).save(buf, format="PNG")
    r = c.post("/items", headers=AUTH, json={"items": [{
        "item_id": "new-horror", "text": "A ghost story in a haunted house with a cursed doll.",
        "image_base64": base64.b64encode(buf.getvalue()).decode(), "attributes": {"genres": "Horror", "year": 2024}}]})
    assert r.status_code == 200, r.text
    assert r.json()["items"][0] == {"item_id": "new-horror", "created": True, "cold": True}
    svc.store.close()
    again = make_service(model_dir, tmp_path, encoder=None)   # restart, no encoder needed: features are stored
    assert "new-horror" in again.state.catalogue.index_of
    sim = again.similar(themed_items(world, "horror")[0], k=len(world.item_theme))
    assert "new-horror" in [e["item_id"] for e in sim["items"]]
    assert again.state.filter_mask("genres:Horror")[again.state.catalogue.index_of["new-horror"]]


def test_rejected_requests_changed_nothing(shared_client):
    svc = shared_client.app.state.service
    assert svc.store.count_events() == 0 and svc.store.items() == [] and svc.online.users() == 0
