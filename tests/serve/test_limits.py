"""Hardening of what a key holder can send: typed attributes, image bombs, bounded growth, bad text.

Regression tests of issue 12, items 1, 2, 7, 8 and the service parts of 12 (media file sizes,
absurd timestamps). Each reproduces the reported failure first.
"""
from __future__ import annotations

import base64
import json
import time

import pytest

from fusionrec.serve.store import StoredItem

from .conftest import keyed_client, make_service, png_bytes

GHOST = "A ghost story in a haunted house."


def _post_item(client, item: dict):
    return client.post("/items", json={"items": [item]})


# ---------------------------------------------------------------------- item 1
def test_item_1_attribute_of_another_type_is_refused_and_never_bricks_a_restart(model_dir, tmp_path, encoder):
    svc = make_service(model_dir, tmp_path, encoder=encoder)
    client = keyed_client(svc)
    r = _post_item(client, {"item_id": "poison-1", "text": GHOST, "attributes": {"year": True}})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "items[0].attributes.year" and "number" in r.json()["error"]
    r = _post_item(client, {"item_id": "poison-2", "text": GHOST, "attributes": {"year": "soon"}})
    assert r.status_code == 422, r.text
    assert {i.item_id for i in svc.store.items()} == set()   # refused before anything was committed
    # values that fit the column after a lossless conversion are accepted, typed as the column
    r = _post_item(client, {"item_id": "typed-3", "text": GHOST, "attributes": {"title": 5, "year": "1999",
                                                                              "genres": 3.5}})
    assert r.status_code == 200, r.text
    attrs = client.get("/items/typed-3").json()["attributes"]
    assert attrs["title"] == "5" and attrs["year"] == 1999 and attrs["genres"] == "3.5"
    # a row written before this check existed does not stop a restart or a retrain
    features = {i.item_id: i for i in svc.store.items()}["typed-3"].features
    svc.store.upsert_items([StoredItem("legacy-bad", GHOST, None, {"year": True, "title": 5}, features)])
    svc.close()
    again = make_service(model_dir, tmp_path, encoder=None)
    assert {"typed-3", "legacy-bad"} <= set(again.state.catalogue.index_of)
    legacy = again.item_profile("legacy-bad")["attributes"]
    assert legacy["title"] == "5" and "year" not in legacy      # the untypable value is left out
    from fusionrec.serve.retrain import training_dataset

    data = training_dataset(again, again.store.max_seq())
    assert data.n_items == again.state.catalogue.n_items
    again.close()


# ---------------------------------------------------------------------- item 2
@pytest.mark.parametrize("size", [(1, 2000), (2000, 1), (1, 60000), (7000, 7000)])
def test_item_2_image_bombs_are_refused_from_the_header_before_decoding(model_dir, tmp_path, encoder, size):
    svc = make_service(model_dir, tmp_path, encoder=encoder)
    client = keyed_client(svc)
    data = base64.b64encode(png_bytes(*size)).decode()
    t0 = time.perf_counter()
    r = _post_item(client, {"item_id": "bomb", "text": GHOST, "image_base64": data})
    took = time.perf_counter() - t0
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == "items[0].image_base64"
    assert "aspect" in body["error"] or "megapixels" in body["error"]
    assert took < 2.0, f"refusing a {size} image took {took:.1f}s"
    assert "bomb" not in svc.state.catalogue.index_of
    svc.close()


# ---------------------------------------------------------------------- item 7
def test_item_7_online_users_are_bounded_and_reloaded_from_the_store(model_dir, tmp_path, world):
    svc = make_service(model_dir, tmp_path, max_online_users=20)
    client = keyed_client(svc)
    items = list(world.item_theme)
    events = [{"user_id": f"visitor-{n:03d}", "item_id": items[n % len(items)]} for n in range(100)]
    assert client.post("/events", json={"events": events}).status_code == 200
    assert svc.online.users() <= 20
    # an evicted user is read back from the store on demand: still served, its item still excluded
    r = client.get("/recommendations/visitor-000", params={"k": 10})
    assert r.status_code == 200, r.text
    assert r.json()["user_state"] == "online" and items[0] not in {e["item_id"] for e in r.json()["items"]}
    assert svc.online.users() <= 20
    assert client.get("/recommendations/never-seen").status_code == 404
    svc.close()


def test_item_7_attribute_keys_are_bounded_per_item_and_in_total(model_dir, tmp_path, encoder):
    svc = make_service(model_dir, tmp_path, encoder=encoder, max_attributes_per_item=8, max_attribute_columns=10)
    client = keyed_client(svc)
    r = _post_item(client, {"item_id": "wide", "text": GHOST, "attributes": {f"k{n}": "x" for n in range(9)}})
    assert r.status_code == 422 and r.json()["field"] == "items[0].attributes", r.text
    n_cols = len(svc.state.catalogue.frame.columns)
    accepted = 0
    for n in range(6):
        r = _post_item(client, {"item_id": f"grow-{n}", "text": GHOST,
                                "attributes": {f"new{n}a": "x", f"new{n}b": "y"}})
        if r.status_code != 200:
            assert r.status_code == 422 and "attribute columns" in r.json()["error"], r.text
            break
        accepted += 1
    assert accepted < 6 and len(svc.state.catalogue.frame.columns) <= max(10, n_cols)
    # known keys still work once the bound is reached
    assert _post_item(client, {"item_id": "known", "text": GHOST, "attributes": {"genres": "Horror"}}).status_code == 200
    svc.close()


# ---------------------------------------------------------------------- item 8
def test_item_8_lone_surrogates_are_refused_with_422(model_dir, tmp_path, encoder):
    svc = make_service(model_dir, tmp_path, encoder=encoder)
    client = keyed_client(svc)
    bodies = {
        "/events": ['{"events": [{"user_id": "\\ud800x", "item_id": "sp000"}]}',
                    '{"events": [{"user_id": "u1", "item_id": "sp000", "event_id": "\\udfff"}]}',
                    '{"events": [{"user_id": "u1", "item_id": "\\ud800"}]}'],
        "/items": ['{"items": [{"item_id": "\\udfff", "text": "A ghost story."}]}',
                   '{"items": [{"item_id": "ok-1", "text": "A ghost story.", "attributes": {"\\ud800": "x"}}]}',
                   '{"items": [{"item_id": "ok-2", "text": "A ghost \\ud800 story."}]}',
                   '{"items": [{"item_id": "ok-3", "text": "A story.", "attributes": {"genres": "\\udc00"}}]}'],
        "/recommendations": ['{"items": ["\\ud800"]}', '{"text": "ghost \\ud800"}'],
    }
    for path, raws in bodies.items():
        for raw in raws:
            r = client.post(path, content=raw.encode(), headers={"content-type": "application/json"})
            assert r.status_code == 422, (path, raw, r.status_code, r.text)
    for path in ("/recommendations/%ED%A0%80", "/items/%ED%A0%80", "/users/%ED%A0%80/profile"):
        r = client.get(path)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
    assert svc.store.count_events() == 0 and not svc.store.items()
    svc.close()


# ---------------------------------------------------------------------- item 12 (service parts)
def test_item_12_media_files_are_read_with_a_size_bound(model_dir, tmp_path, encoder, world):
    huge = world.media_root / "images" / "huge.jpg"
    with open(huge, "wb") as fh:                 # sparse: takes no disk, reads as 300 MB of zeros
        fh.truncate(300 * 1024 * 1024)
    try:
        svc = make_service(model_dir, tmp_path, encoder=encoder, max_media_file_bytes=5_000_000)
        client = keyed_client(svc)
        t0 = time.perf_counter()
        r = _post_item(client, {"item_id": "huge", "text": GHOST, "image_path": "images/huge.jpg"})
        assert r.status_code == 413, r.text
        assert r.json()["field"] == "items[0].image_path" and "5000000" in r.json()["error"]
        assert time.perf_counter() - t0 < 1.0
        svc.close()
    finally:
        huge.unlink()


def test_item_12_absurd_timestamps_are_refused(model_dir, tmp_path, world):
    svc = make_service(model_dir, tmp_path)
    client = keyed_client(svc)
    item = next(iter(world.item_theme))
    for ts in (1e300, -1e300, -1.0, 9.9e12):
        r = client.post("/events", json={"events": [{"user_id": "t-user", "item_id": item, "timestamp": ts}]})
        assert r.status_code == 422 and r.json()["field"].endswith("timestamp"), (ts, r.text)
    r = client.post("/events", json={"events": [{"user_id": "t-user", "item_id": item, "timestamp": 1.7e9}]})
    assert r.status_code == 200, r.text
    # the spec says so too
    schema = client.get("/openapi.json").json()["components"]["schemas"]["EventIn"]["properties"]["timestamp"]
    assert "maximum" in json.dumps(schema)
    svc.close()
