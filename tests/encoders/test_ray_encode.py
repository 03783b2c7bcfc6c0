"""Encoding on Ray actors: same vectors as the single process, same feature store, clear errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusionrec.encoders.pipeline import encode_items
from fusionrec.encoders.registry import build_encoder
from fusionrec.encoders.store import FeatureStore
from fusionrec.errors import UserError

from .conftest import WORDS

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'fusionrec[dist]'")
pytest.importorskip("ray.data", reason="Ray Data is missing: pip install 'ray[data]'")


def _items(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(2, 12))) for _ in range(n)]
    texts[5] = None  # no text: a masked item, never sent to a worker
    return pd.DataFrame({"text": texts})


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_two_ray_workers_give_the_single_process_vectors_into_a_shared_store(tiny_text_model, tmp_path, local_ray):
    items = _items(240)
    enc = build_encoder("sentence-transformer", model_path=str(tiny_text_model))
    single, rep1 = encode_items(enc, items, store_dir=tmp_path / "a", batch_size=16, progress=False)
    enc_ray = build_encoder("sentence-transformer", model_path=str(tiny_text_model))
    first = items.iloc[:160]
    spread, rep2 = encode_items(enc_ray, first, store_dir=tmp_path / "b", batch_size=16, progress=False,
                                ray_workers=2)
    assert rep2.n_encoded > 100 and not rep2.issues[1:]  # only item 5 (no text) is masked
    np.testing.assert_array_equal(spread.mask, single.mask[:160])
    assert not spread.mask[5]
    np.testing.assert_allclose(spread.features, single.features[:160], rtol=0, atol=1e-6)
    # the same content-hashed store: a plain run afterwards encodes only what Ray did not
    full, rep3 = encode_items(enc, items, store_dir=tmp_path / "b", batch_size=16, progress=False)
    assert rep3.n_cached >= 159 and rep3.n_encoded == rep1.n_encoded - rep2.n_encoded
    np.testing.assert_allclose(full.features, single.features, rtol=0, atol=1e-6)
    assert len(FeatureStore.open(tmp_path / "b", enc.info())) == rep1.n_encoded


def test_bad_worker_count_is_a_user_error(tiny_text_model, tmp_path):
    from fusionrec.encoders.ray_encode import run_work_ray

    with pytest.raises(UserError, match="at least 1"):
        run_work_ray(build_encoder("sentence-transformer", model_path=str(tiny_text_model)), [], None, 8, 8,
                     False, workers=0)
