"""``--model auto``'s last candidate: the best candidates on valid, blended.

Two models that rank well for different reasons (a graph model that propagates the few interactions
a sparse user has, a content model that reads their items) err on different users; a blend of their
per-user standardised scores often beats both (on ml100k with at most 5 training rows per user,
LightGCN + two_tower: valid recall@20 0.1647 against 0.1583 for LightGCN alone;
docs/benchmarks/regimes.md). The blend is a :class:`~fusionrec.models.cascade.Cascade` whose
retriever is the better model and whose ranker is the second, re-scoring the retriever's top
``BLEND_TOP_N`` with ``blend * z(first) + (1 - blend) * z(second)``: nothing is trained, it saves and
serves like any cascade, and its weight is chosen on valid among :data:`BLEND_WEIGHTS`. It wins only
when its valid score beats the best single candidate's.

:func:`blend_forward` goes on from there: the blend so far is blended with each further candidate in
valid order (a cascade of the cascade), and a partner is kept only when it raises the valid score. A
weak candidate can be the best partner: on ml1m-warm-sparse content-kNN alone scores valid recall@20
0.040, yet it lifts the blend of the graph models and EASE from 0.1547 to 0.1628, because what it
knows (a user's genres, years, directors) is what five interactions cannot teach a collaborative
model (docs/benchmarks/regimes.md).
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fusionrec.config import RunConfig
from fusionrec.data.dataset import Dataset

BLEND_WEIGHTS = (0.35, 0.5, 0.65, 0.8)   # weight of the better model's standardised score
BLEND_TOP_N = 200                        # the better model's top-N that the blend re-scores


@dataclass
class Trained:
    """A trained candidate, as :func:`~fusionrec.train.auto.select_model` keeps it for the blend."""

    name: str
    valid: float
    model: Any
    cfg: RunConfig
    result: Any = None


def evaluations_needed() -> int:
    """Scoring passes of the blend step, in units of one model's validation (two models per weight)."""
    return 2 * len(BLEND_WEIGHTS)


def blend_top_two(first: Trained, second: Trained, dataset: Dataset, evaluator: Any, metric: str,
                  deadline: float, eval_cost: float, members: int = 2) -> tuple[Trained | None, dict[str, Any]]:
    """The valid-best blend of ``first`` (the better on valid) and ``second``, and its report
    (``name``, ``status``, ``valid``, ``seconds``, ``weight``). A weight whose scoring passes (one per
    model in the blend: ``members``, more than two when ``first`` is a blend already) would end after
    ``deadline`` is not tried; ``None`` when no weight was."""
    from fusionrec.models.cascade import Cascade

    t0 = time.perf_counter()
    # a blend of a blend is named by all its models: blend(a+b) with c is blend(a+b+c)
    inner = first.name[len("blend("):-1] if first.name.startswith("blend(") else first.name
    name = f"blend({inner}+{second.name})"
    data = dataset.train_data(first.cfg.data.modalities)
    best: tuple[float, float, Any] | None = None
    status = "ok"
    for weight in BLEND_WEIGHTS:
        if time.perf_counter() + members * eval_cost >= deadline:
            status = "stopped at budget"
            break
        model = Cascade.from_models(data, first.model, second.model, top_n=min(BLEND_TOP_N, data.n_items),
                                    blend=weight)
        score = float(evaluator.evaluate(model, split="valid").get(metric, math.nan))
        if not math.isnan(score) and (best is None or score > best[0]):
            best = (score, weight, model)
    report = {"name": name, "status": status, "seconds": time.perf_counter() - t0,
              "valid": best[0] if best else math.nan, "weight": best[1] if best else None}
    if best is None:
        return None, report
    dumped = first.cfg.model_dump(mode="json")
    dumped["model"] = {"name": "cascade", "params": best[2].params}
    return Trained(name, best[0], best[2], RunConfig.model_validate(dumped), first.result), report


def blend_forward(ranked: Sequence[Trained], dataset: Dataset, evaluator: Any, metric: str, deadline: float,
                  eval_cost: float) -> tuple[Trained, list[dict[str, Any]]]:
    """Greedy forward blending of the trained candidates ``ranked`` (best on valid first): the best is
    blended with each next one (:func:`blend_top_two`), and the blend replaces it only when it scores
    higher on valid; then the same with the next candidate, until all were tried or ``deadline``
    leaves no time. Returns the final model (``ranked[0]`` when no blend won) and one report per
    partner tried, in order (``kept``: whether that partner joined)."""
    current, members, rows = ranked[0], 1, []
    for partner in ranked[1:]:
        blended, row = blend_top_two(current, partner, dataset, evaluator, metric, deadline, eval_cost,
                                     members=members + 1)
        row["kept"] = blended is not None and blended.valid > current.valid
        rows.append(row)
        if row["kept"]:
            current, members = blended, members + 1
        if row["status"] != "ok":   # out of time: the later partners would not fit either
            break
    return current, rows
