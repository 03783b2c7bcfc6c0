"""Model-folder loading over corrupted folders: ``load_model``, ``fusionrec evaluate`` and ``fusionrec serve``.

One small model is saved once (with ``features.json`` and ``serve_meta.json`` beside it);
every case copies the folder, damages one of its files (bytes, or the structure of its
YAML / JSON / Parquet / .npy / safetensors content) and loads it. Each case must load (the
damage was harmless) or stop with one located message: never a traceback.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st

from fusionrec.config import RunConfig
from fusionrec.data.dataset import Dataset, FeatureModality
from fusionrec.models.io import load_model, save_model
from fusionrec.models.registry import build_model
from fusionrec.train import Trainer, seed_everything
from tests.fuzz.common import (
    FUZZ,
    ODD_JSON,
    assert_clean_exit,
    mutate_bytes,
    run_cli,
    user_error_or,
)
from tests.fuzz.test_fuzz_readers import _odd_npy, _parquet_bytes
from tests.train.synthetic import clustered_dataset

FILES = ["model.yaml", "config.yaml", "weights.safetensors", "features.json", "serve_meta.json",
         "dataset/dataset.json", "dataset/interactions.parquet", "dataset/items.parquet",
         "dataset/modalities/text_minilm.features.npy", "dataset/modalities/text_minilm.mask.npy"]
ODD_YAML = ["!!python/object/apply:os.system ['true']", "!!python/name:os.system", "&a [*a]", "{", "[", "~",
            "1e999", "-.inf", "'unterminated", "\t- tab", "[" * 200 + "]" * 200, "x: &b {y: *b}", "!!binary AAAA",
            "2001-12-14t21:59:43.10-05:00", "0o777", "null", "[1, 2]", "{a: 1}", '"\\ud800"']


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Iterator[Path]:
    torch.set_num_threads(1)
    base = clustered_dataset(n_users=20, n_items=12, per_user=5, seed=5)
    rng = np.random.default_rng(0)
    mod = FeatureModality("text_minilm", "text", rng.normal(size=(12, 3)).astype(np.float32), source="fuzz")
    ds = Dataset("fuzz", [f"u{i}" for i in range(20)], [f"sku-{j}" for j in range(12)], base.interactions,
                 pd.DataFrame({"title": [f"item {j}" for j in range(12)], "price": np.arange(12.0)}),
                 {"text_minilm": mod})
    cfg = RunConfig.model_validate({"model": {"name": "bpr", "params": {"embedding_size": 4}},
                                    "train": {"epochs": 1, "progress": False, "num_threads": 1},
                                    "eval": {"ks": [5], "beyond_accuracy": False}})
    seed_everything(0)
    data = ds.train_data()
    model = build_model("bpr", data, {"embedding_size": 4})
    Trainer(model, data, cfg.train, None).fit()
    out = tmp_path_factory.mktemp("fuzz-model") / "model"
    save_model(model, cfg, ds, out)
    (out / "features.json").write_text(json.dumps({"modalities": {"text_minilm": {"encoder": "precomputed"}}}))
    (out / "serve_meta.json").write_text(json.dumps({"trained_upto_seq": 0}))
    yield out


# ---------------------------------------------------------------------- structured mutations
@st.composite
def _yaml_text(draw: st.DrawFn, text: str) -> bytes:
    lines = text.splitlines()
    i = draw(st.integers(0, len(lines) - 1))
    kind = draw(st.sampled_from(["value", "line", "drop"]))
    if kind == "value" and ":" in lines[i]:
        key = lines[i].split(":", 1)[0]
        lines[i] = f"{key}: {draw(st.sampled_from(ODD_YAML))}"
    elif kind == "line":
        lines.insert(i, draw(st.sampled_from(ODD_YAML)))
    else:
        del lines[i]
    return "\n".join(lines).encode("utf-8", errors="surrogatepass")


def _paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path into nested dicts/lists (so a mutation can replace any part of a JSON document)."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for k, v in list(enumerate(value))[:4]:
            out += _paths(v, (*prefix, k))
    return out


@st.composite
def _json_doc(draw: st.DrawFn, text: str) -> bytes:
    doc = json.loads(text)
    path = draw(st.sampled_from(_paths(doc)[1:] or [()]))
    if not path:
        return json.dumps(draw(st.sampled_from(ODD_JSON))).encode()
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(st.sampled_from([*ODD_JSON, "../../outside", "/etc/passwd", "modalities/../../x"]))
    return json.dumps(doc).encode()


@st.composite
def _safetensors(draw: st.DrawFn, data: bytes) -> bytes:
    """Edit the safetensors header (shapes, dtypes, offsets, its length) or the bytes after it."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    key = draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
    field = draw(st.sampled_from(["shape", "dtype", "data_offsets", "length", "drop"]))
    if field == "shape":
        header[key]["shape"] = draw(st.sampled_from([[], [0], [10**12, 4], [-1, 4], [3], [1, 2, 3, 4], ["a"]]))
    elif field == "dtype":
        header[key]["dtype"] = draw(st.sampled_from(["I64", "BOOL", "F16", "U8", "XX", 5]))
    elif field == "data_offsets":
        header[key]["data_offsets"] = draw(st.sampled_from([[0, 10**12], [10, 0], [-5, 3], [0], "x"]))
    elif field == "drop":
        del header[key]
    body = json.dumps(header).encode()
    length = len(body) if field != "length" else draw(st.sampled_from([0, 7, 2**40, len(body) + 9]))
    return struct.pack("<Q", length) + body + data[8 + n:]


@st.composite
def damaged(draw: st.DrawFn, folder: Path) -> tuple[str, bytes]:
    name = draw(st.sampled_from(FILES))
    data = (folder / name).read_bytes()
    if draw(st.integers(0, 3)) == 0:  # a quarter of the cases: plain byte damage
        return name, draw(mutate_bytes(data))
    if name.endswith(".yaml"):
        return name, draw(_yaml_text(data.decode()))
    if name.endswith(".json"):
        return name, draw(_json_doc(data.decode()))
    if name.endswith(".parquet"):
        return name, draw(_parquet_bytes(pd.read_parquet(folder / name)))
    if name.endswith(".npy"):
        return name, draw(_odd_npy(np.load(folder / name)))
    return name, draw(_safetensors(data))


def _copy(saved: Path, tmp: str, name: str, content: bytes) -> Path:
    d = Path(tmp) / "model"
    shutil.copytree(saved, d)
    (d / name).write_bytes(content)
    return d


# ---------------------------------------------------------------------- the tests
@FUZZ
@given(data=st.data())
def test_load_model_and_evaluate(saved: Path, data: st.DataObject) -> None:
    name, content = data.draw(damaged(saved))
    with tempfile.TemporaryDirectory() as tmp:
        d = _copy(saved, tmp, name, content)
        loaded = user_error_or(lambda: load_model(d))
        event(f"{name}: {'loads' if loaded is not None else 'refused'}")
        if loaded is not None:  # harmless damage: the model must then also score
            loaded.model.full_sort_predict(torch.arange(min(3, loaded.dataset.n_users)))
        code, _, err = run_cli(["evaluate", "--model-dir", str(d), "-q"])
        assert_clean_exit(code, err)
        # a folder load_model refuses is refused by evaluate too (evaluate may refuse more: e.g. no rows left)
        assert loaded is not None or code == 2, err


@FUZZ
@given(data=st.data())
def test_serve_start(saved: Path, data: st.DataObject) -> None:
    import uvicorn

    name, content = data.draw(damaged(saved))
    with tempfile.TemporaryDirectory() as tmp:
        d = _copy(saved, tmp, name, content)
        with mock.patch.object(uvicorn, "run", lambda *a, **k: None), \
                mock.patch.dict(os.environ, {"FUSIONREC_API_KEYS": "f" * 40}):
            code, _, err = run_cli(["serve", "--model", str(d), "--no-encoders", "--db", str(Path(tmp) / "s.db")])
        assert_clean_exit(code, err)
        event(f"{name}: serve exit {code}")
