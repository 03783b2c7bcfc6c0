"""A user's own folder, end to end, exactly as the README tells a new user to run it.

For each folder shape (a retailer's export, a MovieLens-style folder, an MMRec
folder with ``.npy`` features, a RecBole atomic folder) and with no hand-written
YAML: ``fusionrec data init DIR`` -> ``fusionrec train --data DIR --model mmgraph``
-> ``fusionrec serve``, then the service answers recommendations for a known user
and ``/similar`` for an item (for the retailer: an article nobody bought).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from fusionrec.cli import main
from tests.e2e.exports import (
    Export,
    make_mmrec_folder,
    make_movielens_folder,
    make_recbole_folder,
    make_retail_export,
    style_image,
)
from tests.serve.live import LiveServer

pytestmark = pytest.mark.slow
API_KEY = "e2e-key-0123456789abcdef0123"
FAST_TRAIN = ["--set", "train.epochs=4", "--set", "train.eval_every=2", "--set", "train.num_threads=1"]


@pytest.fixture
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONREC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _init_and_train(folder: Path, capsys, out: Path, model: str = "mmgraph") -> Path:
    assert main(["data", "init", str(folder)]) == 0
    init_out = capsys.readouterr()
    assert (folder / "fusionrec.yaml").is_file(), init_out.out + init_out.err
    code = main(["train", "--data", str(folder), "--model", model, "--out", str(out), *FAST_TRAIN])
    train_out = capsys.readouterr()
    assert code == 0, train_out.err
    match = re.search(r"run directory: (\S+)", train_out.out)
    assert match, train_out.out
    return Path(match.group(1)) / "model"


class Served:
    """``fusionrec serve --model DIR`` on loopback (tests/serve/live.py's LiveServer) and a keyed client."""

    def __init__(self, model_dir: Path, tmp: Path) -> None:
        self.server = LiveServer(model_dir, tmp / "serve.sqlite3", API_KEY)
        self.server.wait_ready()
        self.client = httpx.Client(base_url=self.server.url, timeout=30, headers={"X-API-Key": API_KEY})

    def close(self) -> None:
        self.server.stop()
        self.client.close()


def _check_serving(model_dir: Path, tmp: Path, export: Export, user: str, similar_to: str,
                   new_item: dict | None = None) -> dict:
    served = Served(model_dir, tmp)
    try:
        result = {}
        if new_item is not None:
            # copy sent as the item table's own columns, and a photo with a category but no copy at all
            # (its text is masked, as for catalogue items without copy)
            as_columns = {"item_id": "0999999998", "image_path": new_item["image_path"],
                          "attributes": {"prod_name": "Dress 998", "detail_desc": "A red sequin evening dress."}}
            photo_only = {"item_id": "0999999997", "image_path": new_item["image_path"],
                          "attributes": {"colour_group_name": "Red"}}
            posted = served.client.post("/items", json={"items": [new_item, as_columns, photo_only]})
            assert posted.status_code == 200, posted.text
            near = served.client.get(f"/items/{new_item['item_id']}/similar", params={"k": 5})
            assert near.status_code == 200, near.text
            result["new_item_similar"] = [r["item_id"] for r in near.json()["items"]]
        recs = served.client.get(f"/recommendations/{user}", params={"k": 5})
        assert recs.status_code == 200, recs.text
        items = [r["item_id"] for r in recs.json()["items"]]
        assert len(items) == 5 and set(items) <= set(export.item_ids)
        similar = served.client.get(f"/items/{similar_to}/similar", params={"k": 5})
        assert similar.status_code == 200, similar.text
        neighbours = [r["item_id"] for r in similar.json()["items"]]
        assert neighbours and similar_to not in neighbours
        return {**result, "recs": items, "similar": neighbours}
    finally:
        served.close()


def test_retail_export_end_to_end(tmp_path, capsys, cache_env):
    export = make_retail_export(tmp_path / "shop")
    model_dir = _init_and_train(export.root, capsys, tmp_path / "runs")
    described = yaml.safe_load((export.root / "fusionrec.yaml").read_text())
    assert described["columns"]["timestamp"] == "t_dat"
    assert "{article_id:.3}" in described["item_columns"]["image_path"]

    # the report names the missing and corrupt photos by article, and nothing crashed
    assert main(["data", "validate", "--data", str(export.root)]) == 0
    report = capsys.readouterr().out
    for article in export.missing_images + export.corrupt_images:
        assert article in report, f"{article} not named in the validation report:\n{report}"

    # the run records which encoder made each modality, and a hash of the features it used
    recorded = json.loads((model_dir / "features.json").read_text())["modalities"]
    assert recorded["text"]["encoder"] == "minilm" and recorded["image"]["encoder"] == "efficientnet-lite0"
    assert all(len(m["content_hash"]) >= 16 for m in recorded.values())

    # a new article posted with copy and a photo is placed by the model's own content path at once
    photo = export.root / "images" / "new" / "0999999999.jpg"
    photo.parent.mkdir(parents=True)
    style_image("party", np.random.default_rng(5)).save(photo)
    new_item = {"item_id": "0999999999", "text": "Dress 999. Dress. Red. A red sequin evening dress glitter.",
                "image_path": "images/new/0999999999.jpg"}
    result = _check_serving(model_dir, tmp_path, export, export.user_ids[0], export.unseen_items[0], new_item)
    # the unseen article is placed by its content: its neighbours share its style more often than chance
    style = export.item_style[export.unseen_items[0]]
    same = sum(export.item_style[i] == style for i in result["similar"])
    assert same >= 2, (result, style)
    # (how well a posted item is placed is tested against the model's own vectors in tests/serve)
    assert len(result["new_item_similar"]) == 5 and "0999999999" not in result["new_item_similar"]
    assert set(result["new_item_similar"]) <= set(export.item_ids) | {"0999999998", "0999999997"}


def test_ids_keep_leading_zeros(tmp_path, capsys, cache_env):
    export = make_retail_export(tmp_path / "shop", n_customers=40, n_articles=32)
    assert main(["data", "init", str(export.root)]) == 0
    capsys.readouterr()
    from fusionrec.cli_args import load_description
    from fusionrec.data.loading import load_dataset

    dataset = load_dataset(load_description(export.root))
    assert set(export.item_ids[:-4]) <= set(map(str, dataset.item_ids))
    assert all(str(i).startswith("0") for i in dataset.item_ids)


@pytest.mark.parametrize("maker", [make_movielens_folder, make_mmrec_folder, make_recbole_folder],
                         ids=["movielens", "mmrec", "recbole"])
def test_other_folder_shapes_end_to_end(maker, tmp_path, capsys, cache_env):
    export = maker(tmp_path / "data")
    model_dir = _init_and_train(export.root, capsys, tmp_path / "runs")
    _check_serving(model_dir, tmp_path, export, export.user_ids[0], export.item_ids[1])
