"""``--model auto``'s blend of the two best candidates: chosen on valid only, and saved/served like a model."""
from __future__ import annotations

import math
import time

import torch

from fusionrec.models.io import load_model, save_model
from fusionrec.train import auto
from fusionrec.train.auto_blend import BLEND_WEIGHTS, blend_top_two
from tests.models.test_mmgraph import _clustered
from tests.train.test_auto import _make_cfg


def test_the_blend_is_one_more_candidate_and_wins_only_on_valid(tmp_path, evaluated_splits):
    ds, _, _ = _clustered(n_users=120, n_items=60, cold_items=6, per_user=12)
    splits = evaluated_splits
    chosen = auto.select_model(ds, _make_cfg(tmp_path), budget=60, candidates=["pop", "content_knn", "ease"],
                               keep_models=True)
    assert "test" not in splits
    rows = {c.name: c for c in chosen.candidates}
    singles = sorted((c for c in chosen.candidates if c.model != "cascade"), key=lambda c: -c.valid)
    blend = rows[f"blend({singles[0].name}+{singles[1].name})"]
    assert blend.status.startswith("ok, weight ") and not math.isnan(blend.valid)
    best = max(chosen.candidates, key=lambda c: c.valid)
    assert chosen.winner == best.name                       # the blend only when it beats both on valid
    assert (chosen.model.name == "cascade") == (best is blend)
    plain = auto.select_model(ds, _make_cfg(tmp_path), budget=60, candidates=["pop", "content_knn", "ease"],
                              blend=False)
    assert all(c.model != "cascade" for c in plain.candidates)


def test_a_blend_saves_loads_and_scores_the_same(tmp_path):
    ds, _, _ = _clustered(n_users=80, n_items=40, cold_items=4, per_user=10)
    make = _make_cfg(tmp_path)
    chosen = auto.select_model(ds, make, budget=60, candidates=["content_knn", "ease"], keep_models=True, blend=False)
    (a, b) = sorted(chosen.candidates, key=lambda c: -c.valid)
    first = auto.Trained(a.name, a.valid, *chosen.trained[a.name])
    second = auto.Trained(b.name, b.valid, *chosen.trained[b.name])
    from fusionrec.pipeline import make_evaluator

    evaluator = make_evaluator(chosen.dataset, chosen.cfg)
    blended, row = blend_top_two(first, second, chosen.dataset, evaluator, "recall@10", time.perf_counter() + 60, 0.0)
    assert row["weight"] in BLEND_WEIGHTS and blended.cfg.model.name == "cascade"
    save_model(blended.model, blended.cfg, chosen.dataset, tmp_path / "blend")
    loaded = load_model(tmp_path / "blend")
    users = torch.arange(10)
    torch.testing.assert_close(loaded.model.full_sort_predict(users), blended.model.full_sort_predict(users))
    # no time for even one weight: nothing is blended, and the row says why
    none, row = blend_top_two(first, second, chosen.dataset, evaluator, "recall@10", time.perf_counter(), 1.0)
    assert none is None and row["status"] == "stopped at budget"
