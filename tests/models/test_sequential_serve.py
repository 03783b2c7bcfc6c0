"""Serving a sequential model: a posted event changes the next recommendation through the model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionrec.config import RunConfig
from fusionrec.models.registry import build_model
from tests.models.seq_worlds import cycle_world
from tests.models.test_sequential import _fit, one_thread  # noqa: F401 - autouse fixture

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from fusionrec.data.split import leave_last_out_split
    from fusionrec.models.io import save_model

    ds = leave_last_out_split(cycle_world(seed=4, cold_share=0.0))
    torch.manual_seed(0)
    model = _fit(build_model("sasrec", ds.train_data(), {"max_len": 12}), ds, epochs=12)
    cfg = RunConfig.model_validate({"data": {"name": "cycle", "format": "csv"},
                                    "model": {"name": "sasrec", "params": dict(model.params)}})
    out = tmp_path_factory.mktemp("seq-served") / "model"
    save_model(model, cfg, ds, out)
    return ds, model, out


def test_an_event_changes_the_next_recommendations_through_the_model(served, tmp_path, monkeypatch):
    from tests.serve.conftest import API_KEY, keyed_client, make_service

    monkeypatch.setenv("FUSIONREC_API_KEYS", API_KEY)
    ds, model, model_dir = served
    types = np.arange(ds.n_items) % 6
    service = make_service(model_dir, tmp_path)
    client = keyed_client(service)
    user = str(ds.user_ids[5])
    hist = model.history(5)
    before = client.get(f"/recommendations/{user}", params={"k": 5}).json()["items"]
    before_rows = [int(e["item_id"]) for e in before]
    assert np.bincount(types[before_rows], minlength=6).argmax() == (types[hist[-1]] + 1) % 6

    # an item two steps along the cycle: a sequential model now recommends the type after it,
    # which an average of the history's item vectors would not do
    jump = int(np.flatnonzero((types == (types[hist[-1]] + 2) % 6) & ~np.isin(np.arange(ds.n_items), hist))[0])
    r = client.post("/events", json={"events": [{"user_id": user, "item_id": str(ds.item_ids[jump])}]})
    assert r.status_code == 200, r.text
    body = client.get(f"/recommendations/{user}", params={"k": 5}).json()
    after_rows = [int(e["item_id"]) for e in body["items"]]
    assert body["user_state"] == "trained+online"
    assert np.bincount(types[after_rows], minlength=6).argmax() == (types[jump] + 1) % 6
    # exactly the model's own scores for the history with the event appended
    expected = model.predict_from_history([*hist.tolist(), jump]).numpy()
    got = np.array([e["score"] for e in body["items"]])
    assert np.allclose(got, expected[after_rows], atol=1e-4)
    service.close()
