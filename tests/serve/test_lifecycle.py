"""The retrain lifecycle (issue 12, items 3, 4 and 9): data, versions, and what a restart serves."""
from __future__ import annotations

import json
import shutil

import pytest

from fusionrec.errors import UserError

from .conftest import keyed_client, make_service

FAST = ["train.epochs=1"]


def _user_rows(state, user: str) -> int:
    ds = state.dataset
    row = [str(u) for u in ds.user_ids].index(user)
    return int((ds.interactions["user"] == row).sum())


def test_item_3_retrains_do_not_add_stored_events_again(model_dir, tmp_path, world):
    svc = make_service(model_dir, tmp_path, retrain_overrides=FAST)
    client = keyed_client(svc)
    items = list(world.item_theme)[:5]
    assert client.post("/events", json={"events": [{"user_id": "five", "item_id": i} for i in items]}).status_code == 200
    counts = []
    for _ in range(3):
        svc.retrain()
        counts.append(_user_rows(svc.state, "five"))
    assert counts == [5, 5, 5]
    # events after a retrain join the next one exactly once
    assert client.post("/events", json={"events": [{"user_id": "five", "item_id": list(world.item_theme)[9]}]}
                       ).status_code == 200
    svc.retrain()
    assert _user_rows(svc.state, "five") == 6
    svc.close()


def test_item_4_versions_are_short_kept_published_atomically_and_cleaned(model_dir, tmp_path):
    svc = make_service(model_dir, tmp_path, retrain_overrides=FAST, keep_versions=2)
    for _ in range(3):
        svc.retrain()
    root = svc.versions.root
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["v3", "v4"]
    assert (root / "CURRENT").read_text().strip() == "v4"
    health = svc.health()
    assert health["served_version"] == "v4" and "model_dir" not in health
    assert str(tmp_path) not in json.dumps(health) and str(model_dir) not in json.dumps(health)
    # names never grow: many more publications (here of marker folders, in a root of their own) stay short
    from fusionrec.serve.versions import ModelVersions

    scratch = ModelVersions(tmp_path / "scratch", keep=2)
    for _ in range(12):
        scratch.publish(lambda out: (out / "marker").write_text("x"), {"trained_upto_seq": 0})
    assert sorted(p.name for p in scratch.root.iterdir()) == ["CURRENT", "v12", "v13"]
    # a kill while saving leaves a partial folder (or one without its metadata): removed at the next start
    (root / ".partial-v99").mkdir()
    (root / ".partial-v99" / "weights.safetensors").write_bytes(b"half")
    (root / "v98").mkdir()
    served = (root / "CURRENT").read_text().strip()
    svc.close()
    again = make_service(model_dir, tmp_path, retrain_overrides=FAST, keep_versions=2, use_retrained=True)
    names = sorted(p.name for p in again.versions.root.iterdir())
    assert ".partial-v99" not in names and "v98" not in names and served in names
    assert again.health()["served_version"] == served
    again.close()


def test_item_9_model_flag_is_not_silently_replaced(model_dir, tmp_path, caplog):
    svc = make_service(model_dir, tmp_path, retrain_overrides=FAST)
    svc.retrain()
    svc.close()
    # default: --model is what is served, and the newer retrained version is named loudly
    with caplog.at_level("WARNING", logger="fusionrec.serve"):
        again = make_service(model_dir, tmp_path)
    assert again.state.model_dir == str(model_dir)
    h = again.health()
    assert h["served_version"] == "base" and h["retrained_available"] == "v2"
    assert any("use_retrained" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    again.close()
    # asked for explicitly: the retrained version is served
    resumed = make_service(model_dir, tmp_path, use_retrained=True)
    assert resumed.health()["served_version"] == "v2"
    resumed.close()
    # ... but never one retrained from another model folder
    other = tmp_path / "other-model"
    shutil.copytree(model_dir, other)
    (other / "model.yaml").write_text((other / "model.yaml").read_text() + "\n# another run\n")
    with pytest.raises(UserError, match="another model"):
        make_service(other, tmp_path, use_retrained=True)
