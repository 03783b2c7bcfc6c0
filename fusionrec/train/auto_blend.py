"""``--model auto``'s last candidate: the two best candidates on valid, blended.

Two models that rank well for different reasons (a graph model that propagates the few interactions
a sparse user has, a content model that reads their items) err on different users; a blend of their
per-user standardised scores often beats both (on ml100k with at most 5 training rows per user,
LightGCN + two_tower: valid recall@20 0.1647 against 0.1583 for LightGCN alone;
docs/benchmarks/regimes.md). The blend is a :class:`~fusionrec.models.cascade.Cascade` whose
retriever is the better model and whose ranker is the second, re-scoring the retriever's top
``BLEND_TOP_N`` with ``blend * z(first) + (1 - blend) * z(second)``: nothing is trained, it saves and
serves like any cascade, and its weight is chosen on valid among :data:`BLEND_WEIGHTS`. It wins only
when its valid score beats the best single candidate's.
"""
from __future__ import annotations

import math
import time
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
                  deadline: float, eval_cost: float) -> tuple[Trained | None, dict[str, Any]]:
    """The valid-best blend of ``first`` (the better on valid) and ``second``, and its report
    (``name``, ``status``, ``valid``, ``seconds``, ``weight``). A weight whose two scoring passes would
    end after ``deadline`` is not tried; ``None`` when no weight was."""
    from fusionrec.models.cascade import Cascade

    t0 = time.perf_counter()
    name = f"blend({first.name}+{second.name})"
    data = dataset.train_data(first.cfg.data.modalities)
    best: tuple[float, float, Any] | None = None
    status = "ok"
    for weight in BLEND_WEIGHTS:
        if time.perf_counter() + 2 * eval_cost >= deadline:
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
