"""encode_dataset: caching, incremental re-encoding, explicit missing masks, crash safety."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.encoders import FeatureStore, encode_dataset
from fusionrec.encoders.store import MANIFEST

from .conftest import CountingTextEncoder, make_dataset, vector_for

REPO = Path(__file__).resolve().parents[2]


def test_second_run_does_no_model_work_and_one_changed_item_is_re_encoded(tmp_path, shop_items):
    ds = make_dataset(shop_items)
    first = CountingTextEncoder()
    rep = encode_dataset(ds, [first], store_dir=tmp_path, batch_size=8, progress=False)
    assert rep.modalities["text"].n_encoded == len(set(first.encoded)) == 40
    feats1 = ds.modalities["text"].features.copy()

    second = CountingTextEncoder()
    rep2 = encode_dataset(make_dataset(shop_items), [second], store_dir=tmp_path, batch_size=8, progress=False)
    assert second.calls == 0 and second.encoded == []
    assert rep2.modalities["text"].n_cached == 40 and rep2.modalities["text"].n_encoded == 0

    changed = shop_items.copy()
    changed.loc[7, "description"] = "a brand new description"
    third = CountingTextEncoder()
    ds3 = make_dataset(changed)
    rep3 = encode_dataset(ds3, [third], store_dir=tmp_path, batch_size=8, progress=False)
    assert third.encoded == [f"{changed.loc[7, 'title']}. a brand new description"]
    assert rep3.modalities["text"].n_encoded == 1
    f3 = ds3.modalities["text"].features
    np.testing.assert_array_equal(np.delete(f3, 7, 0), np.delete(feats1, 7, 0))
    np.testing.assert_allclose(f3[7], vector_for(third.encoded[0], 8))


def test_no_store_gives_same_vectors(tmp_path, shop_items):
    a, b = make_dataset(shop_items), make_dataset(shop_items)
    encode_dataset(a, [CountingTextEncoder()], store_dir=None, batch_size=5, progress=False)
    encode_dataset(b, [CountingTextEncoder()], store_dir=tmp_path, batch_size=16, progress=False)
    np.testing.assert_array_equal(a.modalities["text"].features, b.modalities["text"].features)


def test_identical_content_is_encoded_once(tmp_path, shop_items):
    items = shop_items.copy()
    items.loc[1, ["title", "description"]] = items.loc[0, ["title", "description"]].to_numpy()
    enc = CountingTextEncoder()
    ds = make_dataset(items)
    encode_dataset(ds, [enc], store_dir=tmp_path, progress=False)
    assert len(enc.encoded) == 39
    np.testing.assert_array_equal(ds.modalities["text"].features[0], ds.modalities["text"].features[1])


def test_missing_text_is_masked_and_reported_not_imputed(tmp_path, shop_items):
    items = shop_items.astype(object)  # raw bytes / surrogates cannot live in pandas' arrow str dtype
    items.loc[3, ["title", "description"]] = [None, "   "]
    items.loc[5, "description"] = b"caf\xe9 latin-1 bytes"
    items.loc[6, "description"] = "bad \udce9 surrogate"  # what errors='surrogateescape' leaves
    ds = make_dataset(items)
    # Two text encoders under different modality names: a failure in one must not touch the other.
    rep = encode_dataset(
        ds, [CountingTextEncoder(modality="text"), CountingTextEncoder("{item_id}", modality="sku_text")],
        store_dir=tmp_path, progress=False,
    )
    text = ds.modalities["text"]
    assert text.mask.tolist() == [i not in (3, 5, 6) for i in range(40)]
    assert not text.features[[3, 5, 6]].any()  # zeros + mask, never a mean vector
    assert ds.modalities["sku_text"].mask.all()
    issues = {i.item_id: i.reason for i in rep.issues}
    assert issues["sku3"].startswith("empty text")
    assert "not valid UTF-8" in issues["sku5"] and "not valid UTF-8" in issues["sku6"]
    assert rep.modalities["text"].n_missing == 3 and len(rep.issues) == 3


def test_text_from_files_reports_missing_and_non_utf8(tmp_path):
    root = tmp_path / "data"
    (root / "txt").mkdir(parents=True)
    (root / "txt" / "0.txt").write_text("a desk lamp", encoding="utf-8")
    (root / "txt" / "1.txt").write_bytes("une lampe café".encode("latin-1"))
    (root / "txt" / "3.txt").write_bytes(b"")
    items = pd.DataFrame({"item_id": [0, 1, 2, 3], "text_path": ["txt/0.txt", "txt/1.txt", "txt/2.txt", "txt/3.txt"]})
    ds = make_dataset(items, root=root)
    rep = encode_dataset(ds, [CountingTextEncoder("{text_path}")], store_dir=None, progress=False)
    assert ds.modalities["text"].mask.tolist() == [True, False, False, False]
    by_id = {i.item_id: i for i in rep.issues}
    assert "not valid UTF-8" in by_id[1].reason and by_id[1].file.endswith("1.txt")
    assert by_id[2].reason == "text file not found"
    assert by_id[3].reason.startswith("empty text")


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    import pandas as pd
    from fusionrec.encoders import encode_dataset
    from tests.encoders.conftest import CountingTextEncoder, make_dataset
    items = pd.DataFrame({"item_id": range(400), "title": [f"item {i}" for i in range(400)],
                          "description": ["x"] * 400})
    encode_dataset(make_dataset(items), [CountingTextEncoder(delay=0.05)], store_dir=sys.argv[1],
                   batch_size=10, flush_every=10, progress=False)
    """
)


def test_sigkill_midway_leaves_a_usable_cache_and_the_rerun_finishes(tmp_path):
    store_dir = tmp_path / "store"
    script = tmp_path / "run.py"
    script.write_text(_KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), str(store_dir)], cwd=REPO, env=env)
    manifests = []
    deadline = time.time() + 60
    try:
        while time.time() < deadline:
            found = list(store_dir.glob(f"*/{MANIFEST}"))
            if found and len(json.loads(found[0].read_text())["shards"]) >= 3:
                manifests = found
                break
            assert proc.poll() is None, "encode finished before it could be killed; slow the encoder down"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and manifests, "run was not killed midway"

    store = FeatureStore.open_existing(manifests[0].parent)
    n_cached = len(store)
    assert 30 <= n_cached < 400
    all_keys = [k for s in store.shards for k in s["keys"]]
    feats, found = store.lookup(all_keys)
    assert found.all() and np.isfinite(feats).all()

    items = pd.DataFrame({"item_id": range(400), "title": [f"item {i}" for i in range(400)], "description": ["x"] * 400})
    enc = CountingTextEncoder()
    ds = make_dataset(items)
    rep = encode_dataset(ds, [enc], store_dir=store_dir, batch_size=50, progress=False)
    assert rep.modalities["text"].n_cached == n_cached
    assert len(enc.encoded) == 400 - n_cached
    expected = np.stack([vector_for(f"item {i}. x", 8) for i in range(400)])
    np.testing.assert_array_equal(ds.modalities["text"].features, expected)
    assert not list(manifests[0].parent.glob(".tmp-*"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        encode_dataset(make_dataset(pd.DataFrame({"item_id": [1], "title": ["a"], "description": ["b"]})),
                       [CountingTextEncoder()], batch_size=0, progress=False)
