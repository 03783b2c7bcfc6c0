"""Attribute modality: one-hot / multi-hot / standardised numerics, unknown categories, caching."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusionrec.encoders import encode_dataset
from fusionrec.encoders.attributes import AttributeEncoder
from fusionrec.errors import UserError

from .conftest import make_dataset


@pytest.fixture
def catalogue() -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": [1, 2, 3, 4, 5, 6],
        "brand": ["acme", "acme", "zeta", "zeta", "solo", None],
        "genres": ["Action|Comedy", "Comedy", "Drama", "Action", "Drama|Comedy", None],
        "price": [10.0, 20.0, 30.0, None, 40.0, None],
        "title": ["a", "b", "c", "d", "e", "f"],
    })


def test_explicit_columns_layout_and_values(catalogue):
    enc = AttributeEncoder(categorical=["brand"], multi_valued={"genres": "|"}, numeric=["price"], min_count=2)
    enc.fit(catalogue)
    names = enc.feature_names()
    assert names == ["brand=acme", "brand=zeta", "brand=<other>",
                     "genres=Comedy", "genres=Action", "genres=Drama", "genres=<other>",
                     "price", "price=<missing>"]
    feats, mask = enc.transform(catalogue)
    assert mask.tolist() == [True] * 5 + [False]  # item 6 has no attribute at all
    row = dict(zip(names, feats[0]))
    assert row["brand=acme"] == 1 and row["genres=Action"] == 1 and row["genres=Comedy"] == 1
    assert row["price"] == pytest.approx((10 - 25) / np.std([10, 20, 30, 40]))
    assert dict(zip(names, feats[4]))["brand=<other>"] == 1  # "solo" seen once < min_count
    assert dict(zip(names, feats[3]))["price=<missing>"] == 1 and dict(zip(names, feats[3]))["price"] == 0
    assert not feats[5].any()


def test_rare_categories_share_other_and_never_seen_ones_carry_nothing(catalogue):
    enc = AttributeEncoder(categorical=["brand"], multi_valued=["genres"], numeric=["price"]).fit(catalogue)
    new = pd.DataFrame({"brand": ["neverseen", "solo", "neverseen"], "genres": ["Western|Comedy", None, "Western"],
                        "price": ["25", None, None]})
    feats, mask = enc.transform(new)
    row = dict(zip(enc.feature_names(), feats[0]))
    # a value no catalogue item has says nothing about the item: it is not the rare values' <other>
    assert mask[0] and row["brand=<other>"] == 0 and row["genres=<other>"] == 0 and row["genres=Comedy"] == 1
    assert row["price"] == pytest.approx(0.0)
    rare = dict(zip(enc.feature_names(), feats[1]))
    assert mask[1] and rare["brand=<other>"] == 1   # 'solo' is in the catalogue once: rare, so <other>
    assert not mask[2]                               # nothing known at all: the modality is masked


def test_auto_detection_skips_ids_and_free_text():
    items = pd.DataFrame({
        "item_id": range(30), "source_iid": range(30), "title": [f"t{i}" for i in range(30)],
        "year": [str(1990 + i % 5) for i in range(30)], "genres": ["A|B", "B", "C"] * 10,
        "rated": ["PG", "R", "G"] * 10, "plot": ["a long plot " * 10] * 30, "image_path": ["x.jpg"] * 30,
    })
    enc = AttributeEncoder().fit(items)
    assert enc.numeric == ["year"] and enc.multi_valued == {"genres": "|"} and enc.categorical == ["rated"]


def test_pipeline_attaches_attribute_modality_and_refits_change_the_id(tmp_path, catalogue):
    ds = make_dataset(catalogue)
    enc = AttributeEncoder(categorical=["brand"], multi_valued={"genres": "|"}, numeric=["price"])
    rep = encode_dataset(ds, [enc], store_dir=tmp_path, progress=False)
    mod = ds.modalities["attribute"]
    assert mod.kind == "attribute" and mod.dim == enc.dim and mod.mask.tolist() == [True] * 5 + [False]
    assert rep.issues[0].reason.startswith("no attribute values")
    first_id = enc.encoder_id
    bigger = pd.concat([catalogue, catalogue.assign(item_id=catalogue.item_id + 10, brand="solo")])
    enc2 = AttributeEncoder(categorical=["brand"], multi_valued={"genres": "|"}, numeric=["price"])
    encode_dataset(make_dataset(bigger), [enc2], store_dir=tmp_path, progress=False)
    assert enc2.encoder_id != first_id  # new vocabulary/statistics -> new cache namespace


def test_bad_columns_are_user_errors(catalogue):
    with pytest.raises(UserError, match="not in the item table"):
        AttributeEncoder(categorical=["colour"]).fit(catalogue)
    with pytest.raises(UserError, match="no attribute columns"):
        AttributeEncoder().fit(pd.DataFrame({"item_id": [1, 2], "title": ["a", "b"]}))


def test_described_columns_are_the_only_attributes():
    import pandas as pd

    from fusionrec.config import DataConfig
    from fusionrec.encoders.attributes import AttributeEncoder
    from fusionrec.encoders.ensure import encoder_spec

    items = pd.DataFrame({"item_id": ["01", "02", "03", "04"], "colour": ["red", "red", "blue", "blue"],
                          "genres": ["A|B", "B", "A", "B|C"], "price": [1.0, 2.0, 3.0, 4.0]})
    enc = AttributeEncoder(columns=["colour", "genres"]).fit(items)
    assert enc.categorical == ["colour"] and enc.multi_valued == {"genres": "|"} and enc.numeric == []
    auto = AttributeEncoder().fit(items)
    assert "price" in auto.numeric and auto._id_parts() != enc._id_parts()
    # the data description's attribute columns reach the encoder through ensure_features' spec
    cfg = DataConfig(item_columns={"item": "item_id", "attributes": "colour,genres"},
                     encoders={"attribute": "attributes"})
    assert encoder_spec(cfg, items)["attribute"]["params"] == {"columns": ["colour", "genres"]}


def test_a_medium_switched_off_in_the_description_drops_its_encoder():
    import pandas as pd

    from fusionrec.config import DataConfig
    from fusionrec.encoders.ensure import encoder_spec

    items = pd.DataFrame({"item_id": ["01", "02"], "text": ["a", "b"]})
    cfg = DataConfig(item_columns={"item": "item_id", "text": "title", "image_path": ""},
                     encoders={"text": "minilm", "image": "efficientnet-lite0"})
    assert list(encoder_spec(cfg, items)) == ["text"]
