"""Broken model folders give one located UserError from evaluate and serve, never a traceback (issue 12, item 10).

One small model is trained and saved once; every case copies the folder, damages one
file, and checks that ``load_model``, ``fusionrec evaluate`` and ``fusionrec serve``
(with uvicorn replaced, so nothing listens) all stop with a message that names the
damaged file and says how to fix it.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from safetensors.numpy import save_file

from fusionrec import cli
from fusionrec.config import RunConfig
from fusionrec.data.dataset import Dataset, FeatureModality
from fusionrec.errors import UserError
from fusionrec.models.io import load_model, save_model
from fusionrec.models.registry import build_model
from fusionrec.train import Trainer, seed_everything
from tests.train.synthetic import clustered_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")
KEY = "k" * 40


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    base = clustered_dataset(n_users=30, n_items=20, per_user=6, seed=3)
    rng = np.random.default_rng(0)
    mod = FeatureModality("text_minilm", "text", rng.normal(size=(20, 4)).astype(np.float32), source="test")
    items = pd.DataFrame({"title": [f"item {j}" for j in range(20)]})
    ds = Dataset("folders", [f"u{i}" for i in range(30)], [f"sku-{j}" for j in range(20)], base.interactions,
                 items, {"text_minilm": mod})
    cfg = RunConfig.model_validate({"model": {"name": "bpr", "params": {"embedding_size": 4}},
                                    "train": {"epochs": 1, "progress": False, "num_threads": 1}})
    seed_everything(0)
    data = ds.train_data()
    model = build_model("bpr", data, {"embedding_size": 4})
    Trainer(model, data, cfg.train, None).fit()
    out = tmp_path_factory.mktemp("saved") / "model"
    save_model(model, cfg, ds, out)
    return out


# ---------------------------------------------------------------------- the corruptions
def _rm(name: str) -> Callable[[Path], str]:
    def act(d: Path) -> str:
        (d / name).unlink()
        return name
    return act


def _truncate(name: str, keep: float = 0.5) -> Callable[[Path], str]:
    def act(d: Path) -> str:
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[: int(len(data) * keep)])
        return name
    return act


def _garbage(name: str) -> Callable[[Path], str]:
    def act(d: Path) -> str:
        (d / name).write_bytes(np.random.default_rng(1).bytes(4096))
        return name
    return act


def _write(name: str, text: str) -> Callable[[Path], str]:
    def act(d: Path) -> str:
        (d / name).write_text(text)
        return name
    return act


def _weights_symlink_outside(d: Path) -> str:
    outside = d.parent / "elsewhere.safetensors"
    shutil.move(d / "weights.safetensors", outside)
    os.symlink(outside, d / "weights.safetensors")
    return "weights.safetensors"


def _weights_dangling_symlink(d: Path) -> str:
    (d / "weights.safetensors").unlink()
    os.symlink(d / "gone.safetensors", d / "weights.safetensors")
    return "weights.safetensors"


def _weights_wrong_shapes(d: Path) -> str:
    from safetensors.numpy import load_file

    state = load_file(str(d / "weights.safetensors"))
    save_file({k: np.zeros((v.shape[0] + 3, *v.shape[1:]), v.dtype) for k, v in state.items()},
              str(d / "weights.safetensors"))
    return "weights.safetensors"


def _edit_json(name: str, edit: Callable[[dict], None]) -> Callable[[Path], str]:
    def act(d: Path) -> str:
        meta = json.loads((d / name).read_text())
        edit(meta)
        (d / name).write_text(json.dumps(meta))
        return name
    return act


def _file_outside(meta: dict) -> None:
    meta["modalities"][0]["file"] = "../../../outside"


def _file_outside_prepare(d: Path) -> str:
    np.save(d.parent / "outside.features.npy", np.zeros((20, 4), np.float32))
    np.save(d.parent / "outside.mask.npy", np.ones(20, bool))
    return _edit_json("dataset/dataset.json", _file_outside)(d)


def _modality_wrong_rows(d: Path) -> str:
    np.save(d / "dataset/modalities/text_minilm.features.npy", np.zeros((7, 4), np.float32))
    return "dataset/modalities/text_minilm.features.npy"


def _modality_npz(d: Path) -> str:
    path = d / "dataset/modalities/text_minilm.mask.npy"
    np.savez(d / "m.npz", a=np.ones(20, bool))
    os.replace(d / "m.npz", path)
    return "dataset/modalities/text_minilm.mask.npy"


def _items_out_of_range(d: Path) -> str:
    path = d / "dataset/interactions.parquet"
    inter = pd.read_parquet(path)
    inter.loc[0, "item"] = 999
    inter.to_parquet(path, index=False)
    return "dataset"


def _interactions_wrong_columns(d: Path) -> str:
    path = d / "dataset/interactions.parquet"
    pd.DataFrame({"who": [1, 2], "what": ["a", "b"]}).to_parquet(path, index=False)
    return "dataset"


def _ids_not_a_list(meta: dict) -> None:
    meta["item_ids"] = 5


def _no_user_ids(meta: dict) -> None:
    del meta["user_ids"]


def _model_yaml(edit: Callable[[dict], None]) -> Callable[[Path], str]:
    def act(d: Path) -> str:
        meta = yaml.safe_load((d / "model.yaml").read_text())
        edit(meta)
        (d / "model.yaml").write_text(yaml.safe_dump(meta))
        return "model.yaml"
    return act


CASES: dict[str, Callable[[Path], str]] = {
    "weights_missing": _rm("weights.safetensors"),
    "weights_truncated": _truncate("weights.safetensors"),
    "weights_garbage": _garbage("weights.safetensors"),
    "weights_symlink_outside": _weights_symlink_outside,
    "weights_dangling_symlink": _weights_dangling_symlink,
    "weights_wrong_shapes": _weights_wrong_shapes,
    "model_yaml_python_tag": _write("model.yaml", "name: bpr\nparams: !!python/object/apply:os.system ['echo hi']\n"),
    "model_yaml_not_a_mapping": _write("model.yaml", "- bpr\n- 4\n"),
    "model_yaml_bad_syntax": _write("model.yaml", "name: [bpr\nparams: {\n"),
    "model_yaml_bad_param_type": _model_yaml(lambda m: m["params"].update(embedding_size="big")),
    "model_yaml_no_name": _model_yaml(lambda m: m.pop("name")),
    "config_yaml_invalid_value": _write("config.yaml", "train:\n  epochs: many\n"),
    "config_yaml_python_tag": _write("config.yaml", "model: !!python/name:os.system\n"),
    "config_yaml_missing": _rm("config.yaml"),
    "dataset_json_bad": _write("dataset/dataset.json", "{not json"),
    "dataset_json_not_object": _write("dataset/dataset.json", "[1, 2, 3]"),
    "dataset_json_ids_not_list": _edit_json("dataset/dataset.json", _ids_not_a_list),
    "dataset_json_no_user_ids": _edit_json("dataset/dataset.json", _no_user_ids),
    "dataset_json_file_outside": _file_outside_prepare,
    "interactions_parquet_garbage": _garbage("dataset/interactions.parquet"),
    "interactions_parquet_missing": _rm("dataset/interactions.parquet"),
    "interactions_wrong_columns": _interactions_wrong_columns,
    "interactions_item_out_of_range": _items_out_of_range,
    "items_parquet_truncated": _truncate("dataset/items.parquet"),
    "modality_npy_truncated": _truncate("dataset/modalities/text_minilm.features.npy", 0.8),
    "modality_npy_missing": _rm("dataset/modalities/text_minilm.features.npy"),
    "modality_npy_wrong_rows": _modality_wrong_rows,
    "modality_mask_is_npz": _modality_npz,
    "features_json_not_object": _write("features.json", "[1, 2]"),
}


def _broken(saved: Path, tmp_path: Path, case: str) -> tuple[Path, str]:
    d = tmp_path / "case" / "model"
    shutil.copytree(saved, d)
    return d, CASES[case](d)


def _located(message: str, bad: str) -> None:
    assert "Traceback" not in message
    assert "error:" in message and "where:" in message and "fix:" in message, message
    assert Path(bad).name in message, (bad, message)


@pytest.mark.parametrize("case", sorted(CASES))
def test_load_model_gives_a_located_user_error(saved: Path, tmp_path: Path, case: str) -> None:
    d, bad = _broken(saved, tmp_path, case)
    if case == "features_json_not_object":
        pytest.skip("features.json is read by serve, not by load_model")
    with pytest.raises(UserError) as info:
        load_model(d)
    _located(info.value.message, bad)


@pytest.mark.parametrize("case", sorted(CASES))
def test_evaluate_cli_exits_2_with_one_message(saved: Path, tmp_path: Path, case: str, capsys) -> None:
    d, bad = _broken(saved, tmp_path, case)
    if case == "features_json_not_object":
        pytest.skip("features.json is read by serve, not by evaluate")
    assert cli.main(["evaluate", "--model-dir", str(d), "-q"]) == 2
    _located(capsys.readouterr().err, bad)


@pytest.mark.parametrize("case", sorted(CASES))
def test_serve_cli_exits_2_with_one_message(saved: Path, tmp_path: Path, case: str, capsys, monkeypatch) -> None:
    import uvicorn

    d, bad = _broken(saved, tmp_path, case)
    started = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append(a))
    monkeypatch.setenv("FUSIONREC_API_KEYS", KEY)
    code = cli.main(["serve", "--model", str(d), "--no-encoders", "--db", str(tmp_path / "s.sqlite3")])
    assert code == 2 and not started
    _located(capsys.readouterr().err, bad)


def test_the_saved_model_itself_loads_and_serves(saved: Path, tmp_path: Path, monkeypatch) -> None:
    """The control: the undamaged folder loads, evaluates and would be served (so the checks above are real)."""
    import uvicorn

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append(a))
    monkeypatch.setenv("FUSIONREC_API_KEYS", KEY)
    assert load_model(saved).model.name == "bpr"
    assert cli.main(["evaluate", "--model-dir", str(saved), "-q"]) == 0
    assert cli.main(["serve", "--model", str(saved), "--no-encoders", "--db", str(tmp_path / "s.sqlite3")]) == 0
    assert len(started) == 1


def test_symlinked_weights_inside_the_folder_still_load(saved: Path, tmp_path: Path) -> None:
    d = tmp_path / "model"
    shutil.copytree(saved, d)
    shutil.move(d / "weights.safetensors", d / "weights-v1.safetensors")
    os.symlink("weights-v1.safetensors", d / "weights.safetensors")
    assert load_model(d).model.name == "bpr"


def test_a_corrupt_store_next_to_the_model_is_a_user_error(saved: Path, tmp_path: Path, capsys,
                                                           monkeypatch) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    monkeypatch.setenv("FUSIONREC_API_KEYS", KEY)
    db = tmp_path / "s.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    assert cli.main(["serve", "--model", str(saved), "--no-encoders", "--db", str(db)]) == 2
    _located(capsys.readouterr().err, "s.sqlite3")
