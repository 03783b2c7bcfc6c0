"""POST /recommendations with user attributes: a new user served by the attribute user tower."""
from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from fusionrec.config import RunConfig
from fusionrec.models.io import save_model
from fusionrec.serve.app import create_app
from fusionrec.serve.security import KeyChecker
from tests.models.test_user_tower import _train, _world

from .conftest import API_KEY, make_service

AUTH = {"X-API-Key": API_KEY}
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    world = _world()
    model = _train(world, {"user_attributes": True, "use_content": False})
    cfg = RunConfig.model_validate({"data": {"name": "users-world", "format": "csv"},
                                    "model": {"name": "two_tower", "params": model.params}})
    out = tmp_path_factory.mktemp("served-users") / "model"
    save_model(model, cfg, world, out)
    return world, model, out


def _types(world):
    # the item types of the synthetic world, recovered from its text feature (one-hot plus noise)
    return world.modalities["text"].features.argmax(axis=1)


def test_attributes_alone_give_the_segments_items(served, tmp_path):
    world, model, model_dir = served
    client = TestClient(create_app(make_service(model_dir, tmp_path), KeyChecker([API_KEY])), headers=AUTH)
    types = _types(world)
    share = []
    for seg in range(6):
        r = client.post("/recommendations", json={"attributes": {"segment": f"s{seg}", "age": 30}, "k": 10})
        assert r.status_code == 200, r.text
        rows = [int(e["item_id"]) for e in r.json()["items"]]
        share.append(np.mean(types[rows] == seg))
    assert np.mean(share) > 0.5, share
    # the served order is the model's own new-user ranking
    expect = model.new_user_scores([{"segment": "s1", "age": 30}], [[]])[0].topk(5).indices.tolist()
    got = client.post("/recommendations", json={"attributes": {"segment": "s1", "age": 30}, "k": 5}).json()
    assert [int(e["item_id"]) for e in got["items"]] == expect


def test_attributes_with_items_and_bad_attributes(served, tmp_path):
    world, _, model_dir = served
    client = TestClient(create_app(make_service(model_dir, tmp_path), KeyChecker([API_KEY])), headers=AUTH)
    first = str(world.item_ids[0])
    r = client.post("/recommendations", json={"attributes": {"segment": "s0"}, "items": [first], "k": 5})
    assert r.status_code == 200 and first not in [e["item_id"] for e in r.json()["items"]]
    r = client.post("/recommendations", json={"attributes": {"segmnet": "s0"}, "k": 5})
    assert r.status_code == 422 and "segment" in r.text
