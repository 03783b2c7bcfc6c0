"""SQLite store (idempotent events, items with features, forgetting) and online user vectors."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from fusionrec.serve.config import OnlineConfig
from fusionrec.serve.online import OnlineEvent, OnlineState
from fusionrec.serve.store import EventStore, StoredItem


def test_store_events_are_idempotent_and_in_wal_mode(tmp_path):
    store = EventStore(tmp_path / "s.sqlite3")
    seqs = store.add_events([("e1", "u", "i1", "click", 1.0, 10.0), (None, "u", "i2", "view", 0.5, 11.0)])
    again = store.add_events([("e1", "u", "i1", "click", 1.0, 10.0), ("e3", "v", "i1", "click", 1.0, 12.0)])
    assert again[0] == seqs[0] and store.count_events() == 3       # the retried e1 is not stored twice
    assert [e.item for e in store.events(user="u")] == ["i1", "i2"]
    assert [e.seq for e in store.events(after_seq=seqs[1])] == [again[1]]
    with sqlite3.connect(tmp_path / "s.sqlite3") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # forgetting keeps a salted hash with the sequence number after the newest event, never the id
    assert store.forget_user("u") == (2, 4) and store.count_events() == 1
    assert store.forgotten_users() == {store.user_hash("u"): 4} and store.forget_generation() == 1
    store.close()


def test_store_items_roundtrip_with_features(tmp_path):
    store = EventStore(tmp_path / "s.sqlite3")
    vec = np.arange(4, dtype=np.float32)
    store.upsert_items([StoredItem("a", "text a", b"\x89PNG", {"genres": "X"}, {"text": vec})])
    store.upsert_items([StoredItem("a", "text b", None, {"genres": "Y"}, {"image": vec * 2})])
    (item,) = store.items()
    assert item.text == "text b" and item.image is None and item.attributes == {"genres": "Y"}
    assert set(item.features) == {"image"} and np.array_equal(item.features["image"], vec * 2)
    store.set_meta("current_model_dir", "/x")
    assert EventStore(tmp_path / "s.sqlite3").get_meta("current_model_dir") == "/x"


def test_online_vector_weights_recent_events_and_blends_gradually():
    cfg = OnlineConfig(half_life_events=1.0, max_blend=0.8, blend_events=5.0)
    online = OnlineState(cfg)
    items = np.eye(3, dtype=np.float32)
    events = [OnlineEvent("a", 1.0, 1, 0.0), OnlineEvent("b", 1.0, 2, 0.0)]
    agg = online.aggregate(events, [0, 1], items)
    assert agg[1] == pytest.approx(2 * agg[0])        # the newer event counts twice (half-life of 1 event)
    heavy = online.aggregate([OnlineEvent("a", 2.0, 1, 0.0), OnlineEvent("b", 1.0, 2, 0.0)], [0, 1], items)
    assert heavy[0] == pytest.approx(heavy[1])        # type weight 2 offsets one half-life
    assert online.aggregate(events, [None, None], items) is None
    base = np.array([0.0, 0.0, 3.0], dtype=np.float32)
    one = online.blend(base, items[0], 1)
    many = online.blend(base, items[0], 50)
    assert 0 < one[0] < many[0] and many[2] < one[2]  # more events move the vector further
    assert many[0] / 3.0 < cfg.max_blend + 1e-6       # but never past max_blend of the trained vector
    assert np.array_equal(online.blend(None, items[0], 1), items[0])  # no trained vector: events alone


def test_online_state_drops_events_learned_by_a_retrain():
    online = OnlineState(OnlineConfig(max_history=3))
    for seq in range(1, 6):
        online.add("u", OnlineEvent(f"i{seq}", 1.0, seq, 0.0))
    assert [e.item for e in online.history("u")] == ["i3", "i4", "i5"]   # bounded history
    assert online.seen("u") == {f"i{s}" for s in range(1, 6)}           # but every item stays seen
    online.drop_upto(4)
    assert [e.item for e in online.history("u")] == ["i5"] and online.seen("u") == {"i5"}
    online.drop_upto(5)
    assert not online.has("u")
