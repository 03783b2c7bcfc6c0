"""``--model auto``: train a portfolio of models within a time budget, choose one on valid, test it once.

Which model suits a catalogue depends on its regime: dense logs favour collaborative models
(EASE, graph models), sparse users and new items favour content (content-kNN, content_cf), and
hybrids sit in between. Rather than asking the user to know, :func:`select_model` trains every
candidate of the portfolio on the train split (one seed), scores each on the **valid** split, and
keeps the best. Only the winner meets the test split (in :func:`run_auto`), so the choice is as
honest as any single model's early stopping.

Budget: candidates run cheapest first; each gets an equal share of what is left of the budget
(time a fast one does not use rolls over to the slower ones). A gradient-trained one runs under
the Trainer's per-step deadline (:class:`~fusionrec.train.trainer.Trainer`): the time is checked
after every training step and every validation; when less than one validation pass is left, the
weights trained since the last validation are validated once more and the valid-best ones kept
("stopped at budget"). The validation cost is estimated from the candidates validated before
(then measured by the candidate itself), and :func:`run_auto` also keeps one such pass back for
the winner's test scoring, so the whole run ends within the budget plus a margin of one training
step and the estimate's error. Once the budget is spent the remaining candidates are skipped (the
first one always runs, so there is always a model). A closed-form candidate cannot be interrupted,
so it can overshoot its share by its own fit time. A candidate that fails (say, out of memory) or
does not fit the data (content models on data without item content) is reported with the reason
and skipped; the run never fails for one candidate.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from fusionrec import output
from fusionrec.config import RunConfig, deep_merge
from fusionrec.data.dataset import Dataset
from fusionrec.errors import UserError
from fusionrec.models.registry import available_models, model_class
from fusionrec.train.auto_blend import Trained, blend_forward, evaluations_needed
from fusionrec.train.trainer import Trainer, seed_everything

EASE_MAX_ITEMS = 20_000   # EASE inverts an items x items matrix; above this ItemKNN stands in for it
SPARSE_ROWS_PER_USER = 10   # below this mean of training rows per user, mmgraph trains as mmgraph-sparse


@dataclass(frozen=True)
class Candidate:
    """One portfolio entry: a registered model, its parameters and the training settings it runs with."""

    model: str
    params: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    # always | cold_items (only when valid/test hold items without training interactions) |
    # timestamps (sequential models: only when the training rows carry times, else their order is arbitrary) |
    # sparse / dense (fewer / at least SPARSE_ROWS_PER_USER training rows per user on average)
    when: str = "always"
    # a content model that also trains on IDs alone: on data without item content it runs as an ID-only
    # model instead of being skipped (mmgraph: its softmax-on-cosine objective beats LightGCN there too)
    ids_only: bool = False

    @property
    def name(self) -> str:
        return self.label or self.model


# The training settings are the ones each model was benchmarked with (docs/benchmarks/): graph models
# validate every 5 epochs, content_cf trains on user batches of 256.
_GRAPH_TRAIN = {"batch_size": 2048, "lr": 0.001, "eval_every": 5, "patience": 5}
PORTFOLIO: tuple[Candidate, ...] = (
    Candidate("content_knn"),
    Candidate("ease"),
    Candidate("content_cf", train={"batch_size": 256, "lr": 0.005, "patience": 8}),
    Candidate("mmgraph", train=_GRAPH_TRAIN, when="dense", ids_only=True),
    # sparse users (ml100k cut to 5 training rows per user), chosen on valid (regimes.md): temperature 1.0
    # among 0.1-1.0 (valid recall@20 0.1617; 0.5 and 0.7 tie, the default 0.2 gives 0.1364); then a
    # per-item popularity bias, which cosine scores cannot carry (0.1676), and content weighted 2x
    # against an ID embedding that five rows per user barely train (0.1717; 3x 0.1725, a tie)
    # without item content it is ID-only: on amazon-baby (6.2 rows per user) valid recall@20 .0791, LightGCN's .0753
    Candidate("mmgraph", {"temperature": 1.0, "item_bias": True, "content_weight": 2.0}, _GRAPH_TRAIN,
              label="mmgraph-sparse", when="sparse", ids_only=True),
    Candidate("mmgraph", {"cold_dropout": 0.3, "cold_negatives": False}, _GRAPH_TRAIN,
              label="mmgraph-adaptive", when="cold_items"),
    Candidate("lightgcn", train=_GRAPH_TRAIN),
    Candidate("two_tower", train={"batch_size": 1024, "lr": 0.005, "patience": 8}),
    Candidate("sasrec", train={"patience": 8}, when="timestamps"),
    Candidate("gru4rec", train={"patience": 8}, when="timestamps"),
)


@dataclass
class CandidateReport:
    """One row of the run's candidate table."""

    name: str
    model: str
    status: str                   # ok | stopped at budget | skipped: ... | failed: ...
    valid: float = math.nan
    seconds: float = 0.0
    epochs: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "status": self.status,
                "valid": None if math.isnan(self.valid) else self.valid,
                "seconds": round(self.seconds, 2), "epochs": self.epochs}


@dataclass
class AutoResult:
    """What :func:`select_model` found: the trained winner and every candidate's valid score and time."""

    winner: str
    model: Any
    cfg: RunConfig
    dataset: Dataset
    candidates: list[CandidateReport]
    valid_metric: str
    budget: float
    seconds: float
    train_result: Any = None
    trained: dict[str, tuple[Any, RunConfig]] = field(default_factory=dict)  # keep_models=True only

    def table(self) -> str:
        """The candidate table as text (valid metric, seconds, status), winner marked."""
        # the name column is as wide as the longest name: a forward blend's name lists every partner
        width = max([18, *(len(c.name) for c in self.candidates)])
        rows = [f"{'candidate':<{width}} {'valid ' + self.valid_metric:>16} {'seconds':>8} {'epochs':>6}  status"]
        for c in self.candidates:
            score = "-" if math.isnan(c.valid) else f"{c.valid:.4f}"
            mark = "  <- chosen" if c.name == self.winner else ""
            rows.append(f"{c.name:<{width}} {score:>16} {c.seconds:>8.1f} {c.epochs:>6}  {c.status}{mark}")
        return "\n".join(rows)


def portfolio_for(dataset: Dataset, candidates: Sequence[Candidate | str] | None = None) -> list[Candidate]:
    """The candidates that apply to ``dataset``: registered ones, EASE swapped for ItemKNN on large
    catalogues, cold-start variants only when valid/test hold items without training interactions,
    mmgraph-sparse (softer temperature, item bias, heavier content) instead of mmgraph on sparse data (named
    candidates are taken as given)."""
    chosen = [c if isinstance(c, Candidate) else _by_name(c) for c in (candidates or PORTFOLIO)]
    registered = set(available_models())
    cold = _has_cold_items(dataset)
    sparse = _is_sparse(dataset)
    out: list[Candidate] = []
    for c in chosen:
        if c.model not in registered:
            continue
        if candidates is None and ((c.when == "cold_items" and not cold) or (c.when == "sparse" and not sparse)
                                   or (c.when == "dense" and sparse)):
            continue
        if c.model == "ease" and dataset.n_items > EASE_MAX_ITEMS:
            c = Candidate("itemknn", label=f"itemknn (ease: > {EASE_MAX_ITEMS} items)")
        out.append(c)
    if not out:
        raise UserError("no candidate model applies", "--model auto",
                        f"name registered models; the portfolio is {[c.name for c in PORTFOLIO]}")
    return out


def _by_name(name: str) -> Candidate:
    for c in PORTFOLIO:
        if name in (c.name, c.model):
            return c
    if name in available_models():
        return Candidate(name)
    raise UserError(f"unknown auto candidate {name!r}", "--candidates",
                    f"use registered models ({', '.join(available_models())}) or portfolio labels "
                    f"({', '.join(c.name for c in PORTFOLIO)})")


def _training_rows(dataset: Dataset) -> pd.DataFrame:
    """The interactions the candidates train on (all of them before a split is made)."""
    return dataset.split_frame("train") if dataset.has_split else dataset.interactions


def _is_sparse(dataset: Dataset) -> bool:
    """True when the users have fewer than ``SPARSE_ROWS_PER_USER`` training rows on average."""
    frame = _training_rows(dataset)
    return len(frame) < SPARSE_ROWS_PER_USER * max(frame["user"].nunique(), 1)


def _has_timestamps(dataset: Dataset) -> bool:
    """True when the training rows carry event times (sequential models read each user's events in order)."""
    frame = _training_rows(dataset)
    return "timestamp" in frame and bool(frame["timestamp"].notna().any())


def _has_cold_items(dataset: Dataset) -> bool:
    """True when some valid/test item never occurs in the train split (item cold start)."""
    if not dataset.has_split:
        return False
    train = set(dataset.split_frame("train")["item"].unique())
    return any(not set(dataset.split_frame(s)["item"].unique()) <= train for s in ("valid", "test"))


# ---------------------------------------------------------------------- selection
def select_model(dataset: Dataset, make_cfg: Callable[[str], RunConfig], *, budget: float,
                 candidates: Sequence[Candidate | str] | None = None, keep_models: bool = False,
                 reserve_test: bool = False, blend: bool = True) -> AutoResult:
    """Train each candidate on ``dataset`` (one seed: the first of ``train.seeds``) within ``budget``
    seconds and keep the best on the valid split; nothing here reads the test split.

    ``make_cfg(model)`` gives the run configuration of one candidate as ``fusionrec train --model``
    would resolve it (dataset preset, run file and ``--set`` overrides included); the portfolio's
    training settings fill in only what is still at its default there.
    ``keep_models`` keeps every trained candidate in ``AutoResult.trained`` (benchmarks only).
    ``reserve_test`` keeps the time of one evaluation pass (as measured on the candidates so far) out
    of the candidates' shares, for the winner's test scoring that follows (:func:`run_auto`).
    ``blend`` adds a last candidate, the best on valid blended with the next ones in valid order, each
    kept when it raises the valid score (:func:`~fusionrec.train.auto_blend.blend_forward`); the time of
    the first pair's scoring passes is kept out of the other candidates' shares likewise (further
    partners are tried while time is left).
    """
    from fusionrec.encoders.ensure import features_for_run
    from fusionrec.pipeline import ensure_split, make_evaluator

    if budget <= 0:
        raise UserError(f"budget must be positive, got {budget}", "--budget", "give seconds, e.g. --budget 600")
    start = time.perf_counter()
    cfg0 = make_cfg("pop")
    dataset = ensure_split(dataset, cfg0).with_positive_rating(getattr(cfg0.data, "positive_rating", None))
    todo = portfolio_for(dataset, candidates)
    dataset, content_note = _with_content(dataset, make_cfg, todo, features_for_run)
    evaluator = make_evaluator(dataset, make_cfg(next((c.model for c in todo if _uses_content(c.model)), "pop")))
    seed = cfg0.train.seeds[0]
    reports: list[CandidateReport] = []
    top: list[Trained] = []   # every trained candidate, best on valid first (the blend's partners)
    trained: dict[str, tuple[Any, RunConfig]] = {}
    eval_cost = 0.0   # seconds of the slowest validation pass so far: the reserve a deadline keeps for one
    passes_kept = (1 if reserve_test else 0) + (evaluations_needed() if blend else 0)
    skips = [_skip_reason(c, dataset, content_note, candidates is None) for c in todo]
    for k, cand in enumerate(todo):
        left = budget - (time.perf_counter() - start) - passes_kept * eval_cost
        if skips[k]:
            reports.append(CandidateReport(cand.name, cand.model, f"skipped: {skips[k]}"))
            continue
        if left <= 0 and top:   # the cheapest candidate always runs: there is always a result
            reports.append(CandidateReport(cand.name, cand.model, "skipped: budget spent"))
            continue
        # an equal share of what is left among the candidates still to run (skipped ones take none)
        deadline = time.perf_counter() + max(left, 0.0) / sum(1 for r in skips[k:] if not r)
        ids_only = bool(content_note) and _uses_content(cand.model)
        report, model, cfg, result = _train_candidate(cand, dataset, make_cfg, evaluator, seed, deadline, eval_cost,
                                                      ids_only=ids_only)
        reports.append(report)
        if result is not None:
            eval_cost = max(eval_cost, result.eval_seconds_per_epoch)
        output.info(f"[auto] {cand.name}: {report.status}, valid {cfg0.train.valid_metric} "
                    f"{report.valid:.4f}, {report.seconds:.1f}s")
        if model is None or math.isnan(report.valid):
            continue
        if keep_models:
            trained[cand.name] = (model, cfg)
        top = sorted([*top, Trained(cand.name, report.valid, model, cfg, result)], key=lambda t: -t.valid)
    if not top:
        raise UserError("no candidate model could be trained", "--model auto",
                        "see the reasons in the candidate table above; raise --budget or name --candidates")
    if blend and len(top) >= 2:
        end = start + budget - (eval_cost if reserve_test else 0.0)
        top = _add_blend(top, dataset, evaluator, cfg0.train.valid_metric, end, eval_cost, reports,
                         trained if keep_models else None)
    win = top[0]
    return AutoResult(win.name, win.model, win.cfg, dataset, reports, cfg0.train.valid_metric, budget,
                      time.perf_counter() - start, win.result, trained)


def _skip_reason(cand: Candidate, dataset: Dataset, content_note: str, whole_portfolio: bool) -> str:
    """Why ``cand`` cannot run on ``dataset`` ('' when it can)."""
    if content_note and _uses_content(cand.model) and not cand.ids_only:
        return content_note
    if cand.when == "timestamps" and whole_portfolio and not _has_timestamps(dataset):
        return "no timestamps (a sequence needs them)"
    return ""


def _add_blend(top: list[Trained], dataset: Dataset, evaluator: Any, metric: str, deadline: float,
               eval_cost: float, reports: list[CandidateReport],
               trained: dict[str, tuple[Any, RunConfig]] | None) -> list[Trained]:
    """The forward blend of the trained candidates, one row of the table per partner tried; ``top`` with
    the final blend first when it beats the best single candidate on valid."""
    try:
        blended, rows = blend_forward(top, dataset, evaluator, metric, deadline, eval_cost)
    except Exception as err:  # noqa: BLE001 - like a failed candidate: reported, never fatal
        first = (str(err).splitlines() or [""])[0][:120]
        reports.append(CandidateReport(f"blend({top[0].name}+{top[1].name})", "cascade",
                                       f"failed: {type(err).__name__}: {first}"))
        return top
    for row in rows:
        status = row["status"] + (f", weight {row['weight']}" if row["weight"] is not None else "")
        status += ", kept" if row["kept"] else ""
        reports.append(CandidateReport(row["name"], "cascade", status, row["valid"], row["seconds"], 0))
        output.info(f"[auto] {row['name']}: {status}, valid {metric} {row['valid']:.4f}, {row['seconds']:.1f}s")
    if blended is top[0]:
        return top
    if trained is not None:
        trained[blended.name] = (blended.model, blended.cfg)
    return [blended, *top]


def _uses_content(model: str) -> bool:
    return bool(getattr(model_class(model), "uses_content", False))


def _with_content(dataset: Dataset, make_cfg: Callable[[str], RunConfig], todo: list[Candidate],
                  features_for_run: Callable[..., Dataset]) -> tuple[Dataset, str]:
    """``dataset`` with its item modalities (from the feature store, encoded when missing) when a
    content candidate is in the portfolio; the second value says why content models are skipped."""
    content = next((c for c in todo if _uses_content(c.model)), None)
    if content is None:
        return dataset, ""
    try:
        dataset = features_for_run(dataset, make_cfg(content.model))
    except UserError as err:
        return dataset, f"no item content ({err.what})"
    return dataset, "" if dataset.modalities else "the data has no item content"


def _train_candidate(cand: Candidate, dataset: Dataset, make_cfg: Callable[[str], RunConfig], evaluator: Any,
                     seed: int, deadline: float, eval_cost: float = 0.0, ids_only: bool = False
                     ) -> tuple[CandidateReport, Any, RunConfig | None, Any]:
    """Build and train one candidate until it stops early or reaches ``deadline`` (``eval_cost``: the
    seconds one validation is expected to take, kept back for the last one); its valid score.
    ``ids_only``: the data has no usable item content, so a content model trains on IDs alone."""
    from fusionrec.models.registry import build_model

    t0 = time.perf_counter()
    try:
        cfg = candidate_config(make_cfg(cand.model), cand)
        if ids_only:
            cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"modalities": []})})
        seed_everything(seed)
        data = dataset.train_data(cfg.data.modalities)
        model = build_model(cand.model, data, cfg.model.params)
        trainer = Trainer(model, data, cfg.train, evaluator, seed=seed, deadline=deadline,
                          valid_seconds_hint=eval_cost)
        result = trainer.fit()
        valid = result.best_valid or evaluator.evaluate(model, split="valid")
        score = float(valid.get(cfg.train.valid_metric, math.nan))
    except Exception as err:  # noqa: BLE001 - reported in the table: one candidate that does not fit the
        # data or the memory, or an optional model that does not import, must not end the whole run
        first = (str(err).splitlines() or [""])[0][:120]
        return CandidateReport(cand.name, cand.model, f"failed: {type(err).__name__}: {first}",
                               seconds=time.perf_counter() - t0), None, None, None
    status = ("stopped at budget" if trainer.out_of_time else "ok") + (", IDs only (no item content)" if ids_only else "")
    epochs = sum(1 for h in result.history if h.get("loss") is not None)
    return CandidateReport(cand.name, cand.model, status, score, time.perf_counter() - t0, epochs), model, cfg, result


def candidate_config(cfg: RunConfig, cand: Candidate) -> RunConfig:
    """``cfg`` (the user's run for this model) with the candidate's parameters, and its training settings
    where ``cfg`` still has the default. No checkpoints: writing one per epoch would spend the budget."""
    from fusionrec.config import TrainConfig

    dumped = cfg.model_dump(mode="json")
    defaults = TrainConfig().model_dump(mode="json")
    # a setting the dataset preset, run file or --set gave (not the plain default) wins over the portfolio's
    train = {k: v for k, v in cand.train.items() if dumped["train"].get(k) == defaults.get(k)}
    layered = deep_merge(dumped, {"model": {"params": cand.params}, "train": {**train, "checkpoint": False}})
    return RunConfig.model_validate(layered)


# ---------------------------------------------------------------------- the run
def run_auto(dataset: Dataset, make_cfg: Callable[[str], RunConfig], *, budget: float,
             candidates: Sequence[Candidate | str] | None = None, output_dir: str | None = None,
             blend: bool = True) -> dict[str, Any]:
    """:func:`select_model`, then the winner scored on the test split once; writes a run directory
    like ``fusionrec train`` (``results.json`` with an ``auto`` block: every candidate's valid score,
    seconds and status, the winner, the budget) and saves the winner's model for ``serve``."""
    from pathlib import Path

    from fusionrec.encoders.ensure import run_features, write_features_json
    from fusionrec.evaluate.report import write_json
    from fusionrec.evaluate.run_report import mean_std_block, results_table_markdown
    from fusionrec.models.io import save_model
    from fusionrec.pipeline import make_evaluator

    run_start = time.perf_counter()
    chosen = select_model(dataset, make_cfg, budget=budget, candidates=candidates, reserve_test=True, blend=blend)
    cfg, model, data = chosen.cfg, chosen.model, chosen.dataset
    if output_dir is not None:
        cfg = cfg.model_copy(update={"output_dir": output_dir})
    t0 = time.perf_counter()
    test = make_evaluator(data, cfg).evaluate(model, split="test")   # the winner only, once
    test_seconds = time.perf_counter() - t0
    run_dir = Path(cfg.output_dir) / f"{data.name}_auto_{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.yaml")
    features = run_features(data, cfg)
    save_model(model, cfg, data, run_dir / "model")
    write_features_json(features, run_dir / "model")
    r = chosen.train_result
    record = {"seed": cfg.train.seeds[0], "best_epoch": r.best_epoch, "stopped_early": r.stopped_early,
              "epochs_run": len(r.history), "seconds_per_epoch": r.seconds_per_epoch,
              "eval_seconds": r.eval_seconds_per_epoch, "total_seconds": r.total_seconds,
              "test_seconds": test_seconds, "valid": r.best_valid, "test": {k: float(v) for k, v in test.items()}}
    timing_keys = ("seconds_per_epoch", "eval_seconds", "total_seconds", "best_epoch", "epochs_run")
    results: dict[str, Any] = {
        "dataset": data.name, "model": chosen.winner, "params": cfg.model.params, "protocol": cfg.eval.protocol,
        "valid_metric": cfg.train.valid_metric, "seeds": [record["seed"]],
        "valid": mean_std_block([record["valid"]]), "test": mean_std_block([record["test"]]),
        "timing": mean_std_block([{k: record[k] for k in timing_keys}]), "per_seed": [record],
        "pointwise": None, "features": features,
        "auto": {"winner": chosen.winner, "winner_model": cfg.model.name, "budget_seconds": budget,
                 "selection_seconds": round(chosen.seconds, 2), "test_seconds": round(test_seconds, 2),
                 "run_seconds": round(time.perf_counter() - run_start, 2),
                 "candidates": [c.as_dict() for c in chosen.candidates]},
    }
    write_json(results, run_dir / "results.json")
    (run_dir / "results.md").write_text(results_table_markdown(results) + "\n## Candidates (valid split)\n\n```\n"
                                        + chosen.table() + "\n```\n")
    results["run_dir"] = str(run_dir)
    auto = results["auto"]
    results["candidate_table"] = chosen.table() + (
        f"\nselection {auto['selection_seconds']:.1f}s + winner's test {auto['test_seconds']:.1f}s: whole run "
        f"{auto['run_seconds']:.1f}s of the {budget:g}s budget")
    return results
