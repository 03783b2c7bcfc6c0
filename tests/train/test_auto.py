"""``--model auto``: the portfolio is chosen on valid only, within the budget, and reports every candidate."""
from __future__ import annotations

import json
import math

import pytest

from fusionrec.config import RunConfig
from fusionrec.errors import UserError
from fusionrec.train import auto
from tests.models.test_mmgraph import _clustered
from tests.train.synthetic import clustered_dataset


def _make_cfg(tmp_path, **train):
    def make(model: str) -> RunConfig:
        return RunConfig.model_validate({
            "data": {"name": "clustered"}, "model": {"name": model},
            "train": {"epochs": 20, "seeds": [0], "progress": False, "num_threads": 1,
                      "valid_metric": "recall@10", **train},
            "eval": {"ks": [10], "protocol": "full", "beyond_accuracy": False},
            "output_dir": str(tmp_path)})
    return make


def test_select_model_chooses_on_valid_and_never_reads_test(tmp_path, evaluated_splits):
    ds, _, _ = _clustered(n_users=120, n_items=60, cold_items=6, per_user=12)
    splits = evaluated_splits
    chosen = auto.select_model(ds, _make_cfg(tmp_path), budget=120,
                               candidates=["pop", "content_knn", "ease"], keep_models=True, blend=False)
    assert "test" not in splits
    ok = [c for c in chosen.candidates if not math.isnan(c.valid)]
    assert {c.name for c in ok} == {"pop", "content_knn", "ease"}
    assert chosen.winner == max(ok, key=lambda c: c.valid).name
    assert chosen.winner != "pop"                     # the clusters are learnable
    assert "<- chosen" in chosen.table() and set(chosen.trained) == {"pop", "content_knn", "ease"}


def test_budget_skips_what_does_not_fit_and_a_failing_candidate_is_reported(tmp_path, monkeypatch):
    ds, _, _ = _clustered(n_users=80, n_items=40, cold_items=4, per_user=10)
    real = auto._train_candidate

    def slow_then_fail(cand, *args, **kwargs):
        if cand.model == "ease":
            raise_at = auto.CandidateReport(cand.name, cand.model, "failed: out of memory")
            return raise_at, None, None, None
        return real(cand, *args, **kwargs)

    monkeypatch.setattr(auto, "_train_candidate", slow_then_fail)
    chosen = auto.select_model(ds, _make_cfg(tmp_path), budget=1e-9, candidates=["pop", "ease"])
    statuses = {c.name: c.status for c in chosen.candidates}
    assert statuses["pop"] == "ok"                    # the first one always gets its (tiny) share
    assert statuses["ease"] == "skipped: budget spent"
    chosen = auto.select_model(ds, _make_cfg(tmp_path), budget=60, candidates=["pop", "ease"])
    assert {c.name: c.status for c in chosen.candidates}["ease"].startswith("failed")
    assert chosen.winner == "pop"
    with pytest.raises(UserError, match="budget"):
        auto.select_model(ds, _make_cfg(tmp_path), budget=0)


def test_gradient_candidate_stops_at_its_deadline(tmp_path):
    ds, _, _ = _clustered(n_users=80, n_items=40, cold_items=4, per_user=10)
    chosen = auto.select_model(ds, _make_cfg(tmp_path, epochs=10_000, patience=10_000, eval_every=1),
                               budget=1, candidates=["bpr"])
    (bpr,) = chosen.candidates
    assert bpr.status == "stopped at budget" and 0 < bpr.epochs < 10_000 and not math.isnan(bpr.valid)


def test_portfolio_adds_the_cold_start_variant_only_with_new_items():
    warm_only = clustered_dataset(n_users=60, n_items=40)
    cold, _, _ = _clustered(n_users=60, n_items=40, cold_items=4, per_user=10)
    assert "mmgraph-adaptive" not in [c.name for c in auto.portfolio_for(warm_only)]
    assert "mmgraph-adaptive" in [c.name for c in auto.portfolio_for(cold)]
    with pytest.raises(UserError, match="unknown auto candidate"):
        auto.portfolio_for(cold, ["mmgrapf"])


def test_run_auto_tests_the_winner_and_writes_the_run(tmp_path):
    ds, _, _ = _clustered(n_users=80, n_items=40, cold_items=4, per_user=10)
    results = auto.run_auto(ds, _make_cfg(tmp_path), budget=60, candidates=["pop", "content_knn"])
    saved = json.loads((tmp_path / results["run_dir"].split("/")[-1] / "results.json").read_text())
    assert saved["auto"]["winner"] == results["model"]
    assert [c["name"] for c in saved["auto"]["candidates"]] == ["pop", "content_knn", "blend(content_knn+pop)"]
    assert "recall@10" in saved["test"] and (tmp_path / results["run_dir"].split("/")[-1] / "model").is_dir()


def test_python_api_recommender_auto(tmp_path):
    import fusionrec

    ds, _, _ = _clustered(n_users=80, n_items=40, cold_items=4, per_user=10)
    rec = fusionrec.Recommender("auto", budget=60, candidates=["pop", "content_knn"])
    rec.fit(ds, progress=False, valid_metric="recall@10")
    assert rec.auto_result.winner in ("pop", "content_knn") and rec.model_name == rec.auto_result.winner
    assert len(rec.recommend(ds.user_ids[0], k=5)) == 5
    with pytest.raises(UserError, match="budget"):
        fusionrec.Recommender("auto", bugdet=60)


def test_sparse_users_get_mmgraph_at_its_sparse_temperature():
    dense = clustered_dataset(n_users=60, n_items=40, per_user=20)          # 16 training rows per user
    sparse, _, _ = _clustered(n_users=60, n_items=40, cold_items=4, per_user=8)   # 6-7
    assert auto._is_sparse(sparse) and not auto._is_sparse(dense)
    names = {d: [c.name for c in auto.portfolio_for(ds)] for d, ds in (("dense", dense), ("sparse", sparse))}
    assert "mmgraph" in names["dense"] and "mmgraph-sparse" not in names["dense"]
    assert "mmgraph-sparse" in names["sparse"] and "mmgraph" not in names["sparse"]
    (cand,) = auto.portfolio_for(sparse, ["mmgraph-sparse"])
    assert cand.params == {"temperature": 1.0, "item_bias": True, "content_weight": 2.0}


def test_mmgraph_sparse_trains_with_its_item_bias_and_content_weight(tmp_path):
    from fusionrec.models.registry import build_model

    sparse, _, _ = _clustered(n_users=60, n_items=40, cold_items=4, per_user=8)
    (cand,) = auto.portfolio_for(sparse, ["mmgraph-sparse"])
    cfg = auto.candidate_config(_make_cfg(tmp_path)("mmgraph"), cand)
    model = build_model("mmgraph", sparse.train_data(None), cfg.model.params)
    assert model.item_bias is not None and model.hp.content_weight == 2.0 and model.hp.temperature == 1.0


def test_without_item_content_mmgraph_runs_on_ids_and_content_only_models_are_skipped(tmp_path):
    ds = clustered_dataset(n_users=60, n_items=40, per_user=8)         # no modalities; 6-7 training rows a user
    assert not ds.modalities and auto._is_sparse(ds)
    # the portfolio itself (candidates=None) with its content-only entries, on a small budget
    chosen = auto.select_model(ds, _make_cfg(tmp_path, epochs=5), budget=60, blend=False)
    statuses = {c.name: c.status for c in chosen.candidates}
    assert statuses["mmgraph-sparse"].endswith(", IDs only (no item content)")
    assert not statuses["mmgraph-sparse"].startswith(("skipped", "failed"))
    assert not math.isnan({c.name: c.valid for c in chosen.candidates}["mmgraph-sparse"])
    for name in ("content_knn", "content_cf", "two_tower"):
        assert statuses[name] == "skipped: the data has no item content"
    # an ID-only mmgraph that wins is tested, saved and written like any winner
    results = auto.run_auto(ds, _make_cfg(tmp_path, epochs=5), budget=60, candidates=["mmgraph-sparse"], blend=False)
    assert results["model"] == "mmgraph-sparse" and "recall@10" in results["test"]
    assert results["auto"]["candidates"][0]["status"].endswith("IDs only (no item content)")


def test_candidate_table_columns_line_up_with_long_blend_names(tmp_path):
    reports = [auto.CandidateReport("ease", "ease", "ok", 0.3, 1.0),
               auto.CandidateReport("blend(mmgraph+ease+mmgraph-adaptive+two_tower)", "cascade", "ok", 0.31, 2.0)]
    result = auto.AutoResult(reports[1].name, None, None, None, reports, "recall@20", 60.0, 3.0)
    header, *rows = result.table().splitlines()
    # every score ends in the same column as the header's metric name
    end = header.index("recall@20") + len("recall@20")
    assert [row[end - 6:end] for row in rows] == ["0.3000", "0.3100"]
