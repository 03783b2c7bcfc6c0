"""``--model auto``'s blend of the best candidates: chosen on valid only, and saved/served like a model."""
from __future__ import annotations

import math
import time

import torch

from fusionrec.models.io import load_model, save_model
from fusionrec.train import auto
from fusionrec.train.auto_blend import BLEND_WEIGHTS, Trained, blend_forward, blend_top_two
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
    assert chosen.winner == best.name                       # a blend only when it beats every single one
    assert (chosen.model.name == "cascade") == best.name.startswith("blend(")
    # one row per partner tried after the best: the second, then the third (with or without the second)
    assert len([c for c in chosen.candidates if c.model == "cascade"]) == 2
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


def _leaves(model) -> list[str]:
    """The single models inside a (nested) cascade, retriever first."""
    if model.name != "cascade":
        return [model.name]
    return _leaves(model.retriever) + _leaves(model.ranker)


class _ByMembers:
    """A stand-in evaluator: valid = how many good models the blend holds, minus one per bad one (so the
    greedy choice is known in advance); counts the passes it scored."""

    def __init__(self, bad: str) -> None:
        self.bad, self.passes = bad, 0

    def evaluate(self, model, split: str = "valid") -> dict[str, float]:
        assert split == "valid"
        self.passes += 1
        leaves = _leaves(model)
        return {"recall@10": 0.1 * sum(-1 if m == self.bad else 1 for m in leaves)}


def _three_trained(tmp_path) -> tuple[list[Trained], object]:
    ds, _, _ = _clustered(n_users=80, n_items=40, cold_items=4, per_user=10)
    chosen = auto.select_model(ds, _make_cfg(tmp_path), budget=60, candidates=["pop", "content_knn", "ease"],
                               keep_models=True, blend=False)
    return [Trained(n, 0.1, *chosen.trained[n]) for n in ("ease", "pop", "content_knn")], chosen


def test_the_forward_blend_keeps_a_partner_only_when_it_raises_valid(tmp_path):
    ranked, chosen = _three_trained(tmp_path)
    evaluator = _ByMembers(bad="pop")
    final, rows = blend_forward(ranked, chosen.dataset, evaluator, "recall@10", time.perf_counter() + 60, 0.0)
    # pop lowers the score and is left out; content_knn, after it in valid order, still joins
    assert [(r["name"], r["kept"]) for r in rows] == [("blend(ease+pop)", False), ("blend(ease+content_knn)", True)]
    assert final.name == "blend(ease+content_knn)" and _leaves(final.model) == ["ease", "content_knn"]
    assert evaluator.passes == 2 * len(BLEND_WEIGHTS)
    # no model lowers it: all three join, as a cascade of the cascade that saves, loads and scores the same
    final, rows = blend_forward(ranked, chosen.dataset, _ByMembers(bad="none"), "recall@10",
                                time.perf_counter() + 60, 0.0)
    assert final.name == "blend(ease+pop+content_knn)" and [r["kept"] for r in rows] == [True, True]
    assert _leaves(final.model) == ["ease", "pop", "content_knn"] and final.cfg.model.name == "cascade"
    save_model(final.model, final.cfg, chosen.dataset, tmp_path / "blend3")
    loaded = load_model(tmp_path / "blend3")
    users = torch.arange(10)
    torch.testing.assert_close(loaded.model.full_sort_predict(users), final.model.full_sort_predict(users))
    # nothing helps: the best single model stays, and the row says the partner was tried
    final, rows = blend_forward(ranked[:2], chosen.dataset, _ByMembers(bad="pop"), "recall@10",
                                time.perf_counter() + 60, 0.0)
    assert final is ranked[0] and [(r["name"], r["kept"]) for r in rows] == [("blend(ease+pop)", False)]


def test_the_forward_blend_stops_when_the_next_partner_does_not_fit_the_time(tmp_path):
    ranked, chosen = _three_trained(tmp_path)
    # time for the pair's passes (2 models x 1 s per weight, on a toy catalogue they take milliseconds)
    # but not for a three-model blend's 3 s: the third is not tried, and its row says why
    final, rows = blend_forward(ranked, chosen.dataset, _ByMembers(bad="none"), "recall@10",
                                time.perf_counter() + 2.8, 1.0)
    assert [(r["status"], r["kept"]) for r in rows] == [("ok", True), ("stopped at budget", False)]
    assert final.name == "blend(ease+pop)"
