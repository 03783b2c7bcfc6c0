"""load_dataset: presets, shared:// paths, the missing-folder message, k-core + split, `data info`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.config import (
    DataConfig,
    dataset_presets,
    load_yaml_resource,
    resolve_config,
)
from fusionrec.data.loading import expand_preset, load_dataset, shared_data_root
from fusionrec.errors import UserError


def test_every_preset_exists_and_validates() -> None:
    names = set(dataset_presets())
    assert {"amazon-baby", "lastfm2k", "ml100k-mmrec", "ml100k", "ml1m", "demo"} <= names
    for name in ("amazon-baby", "lastfm2k", "ml100k-mmrec"):
        cfg = resolve_config(dataset=name, model="bpr")
        assert cfg.data.split.method == "predefined" and cfg.eval.protocol == "mmrec"
    ml1m = resolve_config(dataset="ml1m", model="bpr")
    assert ml1m.data.split.method == "predefined" and ml1m.eval.candidates == "test_items"
    for name in names:
        DataConfig.model_validate(load_yaml_resource(f"datasets/{name}.yaml")["data"])


def test_missing_shared_folder_says_where_it_looked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FUSIONREC_SHARED_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(UserError) as info:
        load_dataset(DataConfig(name="lastfm2k"))
    msg = info.value.message
    assert "shared datasets folder was not found" in msg and str(tmp_path / "nowhere") in msg
    assert "FUSIONREC_SHARED_DATA" in msg


def test_env_var_points_at_shared_data(monkeypatch: pytest.MonkeyPatch, shared_data: Path) -> None:
    monkeypatch.setenv("FUSIONREC_SHARED_DATA", str(shared_data))
    assert shared_data_root() == shared_data


def test_format_shared_and_explicit_overrides(shared_data: Path) -> None:
    cfg = expand_preset(DataConfig(name="lastfm2k", format="shared", kcore=3))
    assert cfg.format == "mmrec" and cfg.kcore == 3 and cfg.path.startswith("shared://")
    # a caller that sets format keeps it (no preset expansion)
    assert expand_preset(DataConfig(name="ml100k", format="demo")).format == "demo"


def test_kcore_and_random_split_through_config(shared_data: Path) -> None:
    ds = load_dataset(DataConfig(name="ml100k", kcore=50, split={"method": "random", "seed": 5}))
    inter = ds.interactions
    assert inter.groupby("user").size().min() >= 50 and inter.groupby("item").size().min() >= 50
    assert ds.has_split and ds.n_items == len(ds.items)
    again = load_dataset(DataConfig(name="ml100k", kcore=50, split={"method": "random", "seed": 5}))
    assert (again.interactions["split"] == inter["split"]).all()


def test_temporal_split_on_ml100k(shared_data: Path) -> None:
    ds = load_dataset(DataConfig(name="ml100k", split={"method": "temporal"}))
    inter = ds.interactions
    assert inter.loc[inter["split"] == "train", "timestamp"].max() <= inter.loc[inter["split"] == "test",
                                                                               "timestamp"].min()


def test_user_csv_with_mapping_and_features(tmp_path: Path) -> None:
    (tmp_path / "events.csv").write_text("who,what,when\nu1,a,3\nu2,b,1\nu1,b,2\n")
    (tmp_path / "catalog.csv").write_text("sku,name\na,Alpha\nb,Beta\nc,Gamma\n")
    np.save(tmp_path / "f.npy", np.arange(6, dtype=np.float64).reshape(3, 2))
    cfg = DataConfig(name="shop", format="csv", path=str(tmp_path / "events.csv"),
                     columns={"user": "who", "item": "what", "timestamp": "when"},
                     items_path="catalog.csv", item_columns={"item": "sku", "text": "name"},
                     features={"emb": {"path": "f.npy", "kind": "other"}},
                     split={"method": "leave_last_out"})
    ds = load_dataset(cfg)
    assert list(ds.item_ids) == ["a", "b", "c"] and ds.modalities["emb"].features.dtype == np.float32
    assert ds.items["text"].tolist() == ["Alpha", "Beta", "Gamma"]
    u1 = ds.interactions[ds.interactions["user"] == ds.user_index("u1")]
    assert u1.sort_values("timestamp")["split"].tolist() == ["train", "test"]


def test_demo_preset_loads_lazily(tmp_path: Path) -> None:
    pytest.importorskip("fusionrec.data.demo")
    ds = load_dataset(DataConfig(name="demo", format="demo",
                                 demo={"n_users": 60, "n_items": 40, "seed": 0, "root": str(tmp_path)}))
    assert ds.has_split and ds.n_users > 0


def test_data_info_cli(shared_data: Path, capsys: pytest.CaptureFixture) -> None:
    from fusionrec.cli import main

    assert main(["data", "info", "--dataset", "lastfm2k"]) == 0
    out = capsys.readouterr().out
    assert "users 1858, items 1425, interactions 56345" in out and "valid" in out and "audio" in out
    assert main(["data", "info", str(shared_data / "ml100k" / "mmrec"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["split"] == {"train": 80000, "valid": 9988, "test": 10012}
    cov = {m["name"]: m["coverage"] for m in info["modalities"]}
    assert cov["text"] == 1.0 and cov["image"] == pytest.approx(1 - 19 / 1682)
    assert main(["data", "validate", "--dataset", "lastfm2k"]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_convert_cli_writes_recbole(tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture) -> None:
    from fusionrec.cli import main

    assert main(["data", "convert", str(shared_data / "amazon-baby"), "--out", str(tmp_path / "rb"),
                 "--name", "baby"]) == 0
    inter = pd.read_csv(tmp_path / "rb" / "baby.test.inter", sep="\t")
    assert list(inter.columns) == ["user_id:token", "item_id:token"] and len(inter) == 20559


def test_file_split_is_kept_unless_a_method_is_asked_for(shared_data: Path) -> None:
    path = str(shared_data / "lastfm2k")
    kept = load_dataset(DataConfig(name="lfm", format="mmrec", path=path))
    assert kept.interactions["split"].value_counts()["test"] == 7219
    resplit = load_dataset(DataConfig(name="lfm", format="auto", path=path, split={"method": "random", "seed": 1}))
    assert not (resplit.interactions["split"] == kept.interactions["split"]).all()
