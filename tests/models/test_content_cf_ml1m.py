"""The ml1m preset's cold-start headline: content_cf over text + item attributes (year one-hot, genres, rating)."""
from __future__ import annotations

import numpy as np
import pytest

from fusionrec.config import resolve_config
from fusionrec.encoders.ensure import build_spec_encoders, encoder_spec

HEADLINE = ["data.modalities=[text,attribute]", "model.params.fusion=concat", "model.params.knn_weight=0.5"]


def test_ml1m_preset_names_the_attribute_encoder_of_the_headline():
    cfg = resolve_config(dataset="ml1m", model="content_cf", overrides=HEADLINE)
    spec = encoder_spec(cfg.data, None)
    # year is categorical, not numeric: a one-hot per release year lets the linear tower learn
    # a non-monotone year effect (the catalogue's popularity peaks at the newest years)
    assert spec["attribute"] == {"name": "attributes", "params": {
        "categorical": ["rated", "year", "director"], "multi_valued": {"genres": "|"}}}
    assert spec["text"]["params"] == {"template": "{title}. {genres}. {plot}"}  # the text features are unchanged
    assert cfg.data.modalities == ["text", "attribute"] and cfg.model.params["fusion"] == "concat"
    assert cfg.model.params["knn_weight"] == 0.5


@pytest.mark.shared_data
def test_ml1m_attribute_features_one_hot_year_and_multi_hot_genres(shared_data):
    from fusionrec.data.loading import load_dataset

    cfg = resolve_config(dataset="ml1m", model="content_cf", overrides=HEADLINE)
    items = load_dataset(cfg.data).items
    encoder = build_spec_encoders({"attribute": encoder_spec(cfg.data, items)["attribute"]})[0]
    encoder.fit(items)
    names = encoder.feature_names()
    feats, mask = encoder.transform(items)
    assert mask.all() and feats.shape == (len(items), len(names))
    year = [i for i, n in enumerate(names) if n.startswith("year=")]
    genres = [i for i, n in enumerate(names) if n.startswith("genres=")]
    director = [i for i, n in enumerate(names) if n.startswith("director=")]
    assert len(year) > 50 and "year=2000" in names and "director=Steven Spielberg" in names
    assert (feats[:, director].sum(1) <= 1).all()      # one director column (or none: no director given)
    assert (feats[:, year].sum(1) == 1).all()          # exactly one year column per film (or <other>)
    toy_story = int(np.flatnonzero(items["title"].to_numpy() == "Toy Story (1995)")[0])
    hot = {names[i] for i in genres if feats[toy_story, i] == 1}
    assert hot == {"genres=Animation", "genres=Children's", "genres=Comedy"}
