"""Feature store: round trip, incremental shards, orphan cleanup, compaction, id checks."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fusionrec.encoders.base import EncoderInfo, content_hash
from fusionrec.encoders.store import MANIFEST, FeatureStore, atomic_write_bytes
from fusionrec.errors import UserError


def info(eid: str = "fake:v1:abc") -> EncoderInfo:
    return EncoderInfo("fake", "text", "text", eid, {"dim": 4})


def keys(n: int, prefix: str = "k") -> list[str]:
    return [content_hash(f"{prefix}{i}") for i in range(n)]


def test_round_trip_and_reopen(tmp_path):
    ks = keys(5)
    feats = np.arange(20, dtype=np.float32).reshape(5, 4)
    with FeatureStore.open(tmp_path, info()) as store:
        store.add(ks[:3], feats[:3])
        store.flush()
        store.add(ks[3:], feats[3:])
        store.add_failure(content_hash("bad"), "corrupt image data")
        store.set_items(["a", "b", "c", "d", "e"], ks)
    reopened = FeatureStore.open(tmp_path, info())
    got, found = reopened.lookup([ks[4], None, content_hash("nope"), ks[0]])
    assert found.tolist() == [True, False, False, True]
    np.testing.assert_array_equal(got[0], feats[4])
    np.testing.assert_array_equal(got[3], feats[0])
    assert not got[1].any() and not got[2].any()
    assert reopened.failure(content_hash("bad")) == "corrupt image data"
    manifest = json.loads((reopened.directory / MANIFEST).read_text())
    assert manifest["dim"] == 4 and manifest["encoder"]["encoder_id"] == "fake:v1:abc"
    assert manifest["items"]["ids"] == ["a", "b", "c", "d", "e"] and manifest["items"]["keys"] == ks
    assert len(manifest["shards"]) == 2


def test_orphan_shards_from_a_killed_run_are_ignored_then_removed(tmp_path):
    ks = keys(3)
    with FeatureStore.open(tmp_path, info()) as store:
        store.add(ks, np.ones((3, 4), np.float32))
    folder = FeatureStore.open(tmp_path, info()).directory
    # What a kill between "shard written" and "manifest replaced" leaves behind:
    np.save(folder / "shard-000099.npy", np.zeros((2, 4), np.float32))
    (folder / ".tmp-manifest.json-123").write_bytes(b'{"truncated')
    reader = FeatureStore.open(tmp_path, info())
    assert len(reader) == 3 and reader.lookup(ks)[1].all()
    with FeatureStore.open(tmp_path, info()) as writer:
        assert writer.orphans_removed == 2
        writer.add(keys(1, "new"), np.zeros((1, 4), np.float32))
    assert not (folder / "shard-000099.npy").exists()
    assert len(FeatureStore.open(tmp_path, info())) == 4


def test_compaction_merges_shards_and_keeps_every_vector(tmp_path):
    ks = keys(30)
    feats = np.random.default_rng(0).standard_normal((30, 4)).astype(np.float32)
    with FeatureStore.open(tmp_path, info()) as store:
        for i in range(30):
            store.add([ks[i]], feats[i : i + 1])
            store.flush()
        assert len(store.shards) == 30
        assert store.compact(max_shards=16)
        assert len(store.shards) == 1
    store = FeatureStore.open(tmp_path, info())
    got, found = store.lookup(ks)
    assert found.all()
    np.testing.assert_array_equal(got, feats)
    assert len(list(store.directory.glob("shard-*.npy"))) == 1


def test_store_rejects_wrong_encoder_and_bad_rows(tmp_path):
    with FeatureStore.open(tmp_path, info()) as store:
        store.add(keys(1), np.ones((1, 4), np.float32))
        with pytest.raises(ValueError, match="dim 5"):
            store.add(keys(1, "x"), np.ones((1, 5), np.float32))
        with pytest.raises(ValueError, match="NaN"):
            store.add(keys(1, "y"), np.full((1, 4), np.nan, np.float32))
    # A folder of another encoder id (same name+digest prefix forged) is refused, not reused.
    folder = FeatureStore.open(tmp_path, info()).directory
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["encoder"]["encoder_id"] = "fake:v1:other"
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="belongs to encoder"):
        FeatureStore.open(tmp_path, info())


def test_writing_needs_the_lock(tmp_path):
    store = FeatureStore.open(tmp_path, info())
    with pytest.raises(RuntimeError, match="acquire"):
        store.add(keys(1), np.ones((1, 4), np.float32))


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "f.json"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
