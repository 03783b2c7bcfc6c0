"""Acceptance 5: a new item posted with text and an image is found at once, without retraining."""
from __future__ import annotations

import base64
import io

import numpy as np
from fastapi.testclient import TestClient

from fusionrec.serve.app import create_app
from fusionrec.serve.security import KeyChecker

from .conftest import API_KEY, make_service, theme_image

AUTH = {"X-API-Key": API_KEY}


def _png(theme: str, seed: int) -> str:
    buf = io.BytesIO()
    theme_image(theme, np.random.default_rng(seed)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_new_item_appears_in_similar_and_in_fitting_recommendations(model_dir, tmp_path, encoder, world):
    svc = make_service(model_dir, tmp_path, encoder=encoder)
    client = TestClient(create_app(svc, KeyChecker([API_KEY])), headers=AUTH)
    n_before = svc.state.catalogue.n_items
    version = svc.state.version
    r = client.post("/items", headers=AUTH, json={"items": [{
        "item_id": "brand-new-space-film",
        "text": "An astronaut mission to a distant nebula aboard a starship, far from the space station.",
        "image_base64": _png("space", 11),
        "attributes": {"title": "Nebula Run", "genres": "Sci-Fi", "year": 2025},
    }]})
    assert r.status_code == 200, r.text
    assert svc.state.catalogue.n_items == n_before + 1 and svc.state.version == version  # no retrain

    # /similar of a related existing item (a space film) lists the new one near the top
    space_items = [i for i, t in world.item_theme.items() if t == "space"]
    hits = 0
    for item in space_items[:4]:
        sim = client.get(f"/items/{item}/similar", params={"k": 10}).json()["items"]
        hits += "brand-new-space-film" in [e["item_id"] for e in sim]
    assert hits >= 3, hits
    # and it is not similar to unrelated items
    cooking = [i for i, t in world.item_theme.items() if t == "cooking"][0]
    sim = client.get(f"/items/{cooking}/similar", params={"k": 10}).json()["items"]
    assert "brand-new-space-film" not in [e["item_id"] for e in sim]

    # a user whose history is space films gets it among their top recommendations; a cooking fan does not
    space_fans = [u for u, t in world.user_theme.items() if t == "space"]
    ranks = []
    for user in space_fans:
        recs = [e["item_id"] for e in client.get(f"/recommendations/{user}", params={"k": 10}).json()["items"]]
        ranks.append("brand-new-space-film" in recs)
    assert np.mean(ranks) >= 0.75, ranks
    cook_fan = [u for u, t in world.user_theme.items() if t == "cooking"][0]
    recs = [e["item_id"] for e in client.get(f"/recommendations/{cook_fan}", params={"k": 5}).json()["items"]]
    assert "brand-new-space-film" not in recs

    # the explanation of a cold item is all content (no collaborative signal yet)
    ex = client.get(f"/explain/{space_fans[0]}/brand-new-space-film").json()["modality_contributions"]
    assert abs(ex["collaborative"]) < 1e-3 and ex["text"] != 0 and ex["image"] != 0
    assert client.get("/items/brand-new-space-film").json()["cold"] is True


def test_updating_a_warm_item_keeps_its_trained_vector(model_dir, tmp_path, encoder, world):
    svc = make_service(model_dir, tmp_path, encoder=encoder)
    client = TestClient(create_app(svc, KeyChecker([API_KEY])), headers=AUTH)
    item = [i for i, t in world.item_theme.items() if t == "horror"][0]
    row = svc.state.catalogue.index_of[item]
    before = svc.state.item_vectors[row].copy()
    r = client.post("/items", headers=AUTH, json={"items": [{"item_id": item, "text": "A vampire night.",
                                                              "attributes": {"year": 1999}}]})
    assert r.status_code == 200 and r.json()["items"][0] == {"item_id": item, "created": False, "cold": False}
    assert np.array_equal(svc.state.item_vectors[row], before)
    assert client.get(f"/items/{item}").json()["attributes"]["year"] == 1999
