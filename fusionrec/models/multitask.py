"""Multi-task ranking: click and conversion predicted together over the impression space.

The input fields are those of the ``dcn`` ranker (:mod:`fusionrec.models.ranker`): user ID,
the user's history (ID and content means), item ID (dropped at random, zero for cold items),
one projected field per item modality and presence flags. Above them sit DCN-v2 networks
("bodies": a cross network and a deep network, without the output layer) and one small
tower per task, arranged by ``architecture``:

* ``esmm`` -- one body per task (shared embeddings and fields, separate networks), as in
  ESMM (Ma et al., *Entire Space Multi-Task Model*, SIGIR 2018);
* ``shared_bottom`` -- one body shared by both task towers;
* ``mmoe`` -- ``n_experts`` bodies mixed per task by a softmax gate over ``x0`` (Ma et al.,
  *Multi-gate Mixture-of-Experts*, KDD 2018).

Tasks and targets, on every row the trainer's pointwise sampler gives (an *impression*):
``click`` is the row's label (a training positive; explicit label-0 rows are impressions
that were not clicked; ``num_negatives`` items per click are sampled from the catalogue as
unclicked impressions when the data logs none). ``conversion`` is a click that converted:
its label is at least ``conversion_label`` (the demo's events: 0 shown, 1 clicked, 2
purchased; :mod:`fusionrec.data.demo_events`) or, with ``conversion_rating``, its rating
is at least that (MovieLens: clicked = rated, converted = rated 4 or more).

``objective`` chooses what is trained:

* ``multitask`` (ESMM): ``pCTR = s(click tower)``, ``pCVR = s(cvr tower)`` and
  ``pCTCVR = pCTR * pCVR``; loss ``BCE(pCTR, click) + conversion_weight * BCE(pCTCVR, conversion)``
  over all impressions, so pCVR is learned over the entire space, never from clicked rows
  alone (the sample-selection bias of a CVR model trained on clicks). As published, the CTCVR
  loss also trains the click tower through ``pCTR``: a click that did not convert pushes pCTR
  down. ``ctcvr_click_gradient: false`` holds pCTR fixed in that loss, so the click tower
  learns from clicks alone and the CTCVR loss trains the CVR side (and the shared fields);
  ``conversion_shared_gradient`` scales the CTCVR loss's gradient into what the click task shares
  (embeddings and input fields; the shared networks of ``shared_bottom`` / ``mmoe``): at 0 the
  scarce conversion labels, which overfit within a few epochs, cannot reshape the click task's
  representation, and the CVR side still reads it. ``task_checkpoints`` keeps one valid-best state
  per task (:mod:`fusionrec.train.averaging`): each task stops training when its own patience runs
  out, pCTR is served from the click-best state (a frozen copy of the network) and pCVR from the
  conversion-best one;
* ``click`` / ``conversion`` -- one task alone over the impressions (single-task baselines,
  same fields and network);
* ``cvr_clicked`` -- the classic CVR model: ``BCE(pCVR, conversion)`` on clicked rows only;
  its conversion estimate over impressions is pCVR itself.

Reported per task (``fusionrec train`` / ``evaluate``): ``auc_click`` / ``logloss_click``,
``auc_conversion`` / ``logloss_conversion`` (over the impression space), ``auc_cvr`` /
``logloss_cvr`` (conversion given a click, on clicked rows), and ``auc_tasks``, the mean of
the click and conversion AUCs (the default selection metric). Ranking scores
(``full_sort_predict``, ``score_candidates``, a cascade's re-ranking) are
``sum_t score_weights[t] * log p_t`` -- ``{click: 1, cvr: 1}`` is ``log pCTCVR``.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from fusionrec.data.dataset import TrainData
from fusionrec.errors import UserError
from fusionrec.models.multitask_tasks import TaskStates
from fusionrec.models.ranker import DCNRanker

log = logging.getLogger(__name__)
ARCHITECTURES = ("esmm", "shared_bottom", "mmoe")
OBJECTIVES = ("multitask", "click", "conversion", "cvr_clicked")
TASKS = ("click", "conversion", "cvr")
_EPS = 1e-7


class DCNBody(nn.Module):
    """One DCN-v2 network over ``x0`` without its output layer: the ``dcn`` ranker's own cross and
    deep networks and its per-side first-layer split, so full-catalogue scoring stays affordable."""

    # the dcn ranker's network code, bound to this module (it reads only the attributes set below)
    _init_network = DCNRanker._init_network
    first_layer_parts = DCNRanker._first_layer_parts
    hidden = DCNRanker._score

    def __init__(self, hp: Any, d: int, d_user: int) -> None:
        super().__init__()
        self.hp = hp
        self.structure = hp.structure
        self.d_user = d_user
        self._init_network(d)
        self.out_dim = self.head.in_features
        self.head = nn.Identity()   # the task towers are the output layers


def _mlp(d_in: int, hidden: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(d_in, h), nn.ReLU(), nn.Dropout(dropout)]
        d_in = h
    return nn.Sequential(*layers, nn.Linear(d_in, 1))


class MultiTaskRanker(TaskStates, DCNRanker):
    """Click and conversion towers over the dcn ranker's fields (see the module docstring)."""

    name = "multitask"
    # a run selects on the mean task AUC unless it names another metric (fusionrec.config)
    default_valid_metric: ClassVar[str] = "auc_tasks"
    # every task key a run may name; an instance lists the tasks its objective predicts
    metric_tasks: tuple[str, ...] = TASKS
    # the conversion side's CPU random state (torch.random.set_rng_state takes a CPU ByteTensor)
    host_tensors: ClassVar[tuple[str, ...]] = ("_cvr_rng",)

    class Params(DCNRanker.Params):
        architecture: Literal[ARCHITECTURES] = Field("esmm", description=(  # type: ignore[valid-type]
            "esmm: a network per task over shared fields; shared_bottom: one network, two towers; "
            "mmoe: n_experts networks mixed per task by gates"))
        objective: Literal[OBJECTIVES] = Field("multitask", description=(  # type: ignore[valid-type]
            "multitask: ESMM's CTR + CTCVR losses over impressions; click / conversion: that task alone; "
            "cvr_clicked: conversion on clicked rows only (the biased classic CVR model)"))
        conversion_rating: float | None = Field(None, description=(
            "a click converts when its rating is at least this (e.g. 4 on MovieLens); null: when its "
            "label is at least conversion_label"))
        conversion_label: float = Field(2.0, description="label value of a converting event (0 shown, 1 clicked, "
                                                         "2 purchased)")
        conversion_weight: float = Field(1.0, ge=0, description="weight of the conversion loss against the "
                                                                "click loss")
        ctcvr_click_gradient: bool = Field(True, description=(
            "multitask: the CTCVR loss also trains the click tower through pCTR (ESMM as published); false: "
            "pCTR is held fixed in that loss, so the click tower learns from clicks alone"))
        conversion_shared_gradient: float = Field(1.0, ge=0, le=1, description=(
            "multitask: scale of the conversion loss's gradient into what the click task shares (the "
            "embeddings and input fields; with shared_bottom / mmoe also the shared networks): 1 trains them "
            "from both losses, 0 from the click loss alone -- the conversion side reads the click-trained "
            "representation but does not reshape it"))
        shared_fields: bool = Field(True, description=(
            "esmm: the click and conversion sides share the embeddings and input fields; false: the "
            "conversion side has fields of its own (and its own random stream), so the click side trains "
            "exactly as a click-only model would while pCVR is still learned over the entire impression "
            "space through pCTR x pCVR"))
        task_checkpoints: bool = Field(False, description=(
            "multitask: keep one valid-best state per task (click on auc_click, conversion on auc_conversion), "
            "stop training each task when its own train.patience runs out (the run ends when both have), and "
            "serve pCTR from the click-best state, pCVR from the conversion-best one (pCTCVR = their product)"))
        n_experts: int = Field(4, ge=1, description="mmoe: networks mixed by the task gates")
        tower_layers: list[int] = Field(default_factory=lambda: [32], description="hidden widths of each task "
                                                                                  "tower")
        num_negatives: int | None = Field(None, ge=0, description=(
            "unclicked impressions sampled from the catalogue per click (null: 0 when the training rows "
            "log impressions as label 0, else 4)"))
        score_weights: dict[str, float] | None = Field(None, description=(
            "ranking score = sum of weight * log p(task) over click / conversion / cvr "
            "(null: the first predicted of click, conversion)"))

    hp: Params

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        hp = self.hp
        self.metric_tasks = {"multitask": TASKS, "click": ("click",), "conversion": ("conversion",),
                             "cvr_clicked": ("conversion", "cvr")}[hp.objective]
        weights = dict(hp.score_weights or {self.metric_tasks[0]: 1.0})
        unknown = [t for t in weights if t not in self.metric_tasks]
        if unknown:
            raise UserError(f"multitask: score_weights name {unknown}, which objective {hp.objective!r} does not "
                            "predict", "model.params.score_weights",
                            f"weight only {list(self.metric_tasks)} (or objective: multitask for all three)")
        self.score_weights = weights
        logged = bool((data.train_frame["label"].to_numpy(np.float64) <= 0).any()) if len(data.train_frame) else False
        self._num_negatives = hp.num_negatives if hp.num_negatives is not None else (0 if logged else 4)
        self.register_buffer("conv_keys", torch.from_numpy(self._conversion_keys(data)), persistent=False)
        self._check_has_conversions()
        self._finished: set[str] = set()   # tasks no longer trained (their patience ran out)
        self.cvr_net: MultiTaskRanker | None = None
        if not hp.shared_fields and hp.objective == "multitask":
            self._init_cvr_net(data)
        if hp.task_checkpoints and hp.objective == "multitask":
            self._init_click_state(data)

    @property
    def num_negatives(self) -> int:
        """Sampled unclicked impressions per click (see the ``num_negatives`` parameter)."""
        return self._num_negatives

    # ------------------------------------------------------------------ construction
    def _init_network(self, d: int) -> None:
        """Bodies, gates and task towers over ``x0`` of width ``d`` (called by the dcn constructor)."""
        hp = self.hp
        n_bodies = {"esmm": 2, "shared_bottom": 1, "mmoe": hp.n_experts}[hp.architecture]
        self.bodies = nn.ModuleList([DCNBody(hp, d, self.d_user) for _ in range(n_bodies)])
        width = self.bodies[0].out_dim
        self.towers = nn.ModuleDict({t: _mlp(width, list(hp.tower_layers), hp.dropout) for t in ("click", "cvr")})
        if hp.architecture == "mmoe":
            self.gates = nn.ModuleDict({t: nn.Linear(d, n_bodies) for t in ("click", "cvr")})

    def _conversion_keys(self, data: TrainData) -> np.ndarray:
        """Sorted ``user * n_items + item`` keys of the training clicks that converted."""
        frame = data.train_frame
        clicked = frame["label"].to_numpy(np.float64) > 0
        if self.hp.conversion_rating is not None:
            converted = frame["rating"].to_numpy(np.float64) >= self.hp.conversion_rating
        else:
            converted = frame["label"].to_numpy(np.float64) >= self.hp.conversion_label
        rows = clicked & converted
        keys = frame["user"].to_numpy(np.int64)[rows] * self.n_items + frame["item"].to_numpy(np.int64)[rows]
        return np.unique(keys)

    def _check_has_conversions(self) -> None:
        # a warning, not an error: the model still trains (its conversion task learns "never"), and
        # implicit data without conversions is a legitimate input for the click task
        if self.conv_keys.numel() == 0 and self.hp.objective != "click":
            rule = (f"rating >= {self.hp.conversion_rating}" if self.hp.conversion_rating is not None
                    else f"label >= {self.hp.conversion_label}")
            log.warning("multitask: no training click converts (%s); log conversions as label 2 (0 shown, "
                        "1 clicked, 2 purchased), set model.params.conversion_rating for rated data (e.g. 4), "
                        "or use objective: click", rule)

    # ------------------------------------------------------------------ network
    def _shared_for_cvr(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with the CVR path's gradient scaled by ``conversion_shared_gradient`` (same value)."""
        scale = self.hp.conversion_shared_gradient
        if scale == 1.0 or not torch.is_grad_enabled():
            return x
        return x.detach() if scale == 0.0 else x * scale + x.detach() * (1.0 - scale)

    def _first_layer_parts(self, user_side: torch.Tensor, item_side: torch.Tensor) -> dict[str, Any]:
        sides = [(user_side, item_side)] * len(self.bodies)
        if self.hp.architecture == "esmm":   # body 1 is the CVR side's
            sides[1] = (self._shared_for_cvr(user_side), self._shared_for_cvr(item_side))
        parts: dict[str, Any] = {"bodies": [b.first_layer_parts(u, i) for b, (u, i) in zip(self.bodies, sides)]}
        if self.hp.architecture == "mmoe":
            du = self.d_user
            for t, gate in self.gates.items():
                u, i = (user_side, item_side) if t == "click" else (self._shared_for_cvr(user_side),
                                                                    self._shared_for_cvr(item_side))
                parts[f"gate_u_{t}"] = u @ gate.weight[:, :du].T + gate.bias
                parts[f"gate_i_{t}"] = i @ gate.weight[:, du:].T
        return parts

    def _needed(self) -> tuple[str, ...]:
        if self.cvr_net is not None:   # the conversion side is cvr_net's
            return ("click",)
        return {"multitask": ("click", "cvr"), "click": ("click",)}.get(self.hp.objective, ("cvr",))

    def _task_logits(self, user_side: torch.Tensor, item_side: torch.Tensor, parts: dict[str, Any],
                     u_idx: torch.Tensor, i_idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits of the towers the objective uses (``click``, ``cvr``) for the pairs."""
        needed = self._needed()
        arch = self.hp.architecture
        if arch == "esmm":
            index = {"click": 0, "cvr": 1}
            hidden = {}
            for t in needed:
                u, i = (user_side, item_side) if t == "click" else (self._shared_for_cvr(user_side),
                                                                    self._shared_for_cvr(item_side))
                hidden[t] = self.bodies[index[t]].hidden(u, i, parts["bodies"][index[t]], u_idx, i_idx)
        else:
            outs = [b.hidden(user_side, item_side, p, u_idx, i_idx) for b, p in zip(self.bodies, parts["bodies"])]
            if arch == "shared_bottom":
                hidden = {t: outs[0] if t == "click" else self._shared_for_cvr(outs[0]) for t in needed}
            else:
                stacked = torch.stack(outs, dim=1)                                  # [P, E, H]
                hidden = {}
                for t in needed:
                    gate = torch.softmax(parts[f"gate_u_{t}"][u_idx] + parts[f"gate_i_{t}"][i_idx], dim=1)
                    experts = stacked if t == "click" else self._shared_for_cvr(stacked)
                    hidden[t] = (gate[:, :, None] * experts).sum(1)
        return {t: self.towers[t](h).squeeze(-1) for t, h in hidden.items()}

    def _log_probs(self, logits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``log p`` of every task the objective predicts (see the module docstring)."""
        objective = self.hp.objective
        if objective == "click":
            return {"click": F.logsigmoid(logits["click"])}
        if objective == "conversion":
            return {"conversion": F.logsigmoid(logits["cvr"])}
        cvr = F.logsigmoid(logits["cvr"])
        if objective == "cvr_clicked":
            return {"conversion": cvr, "cvr": cvr}
        click = F.logsigmoid(logits["click"])
        return {"click": click, "conversion": click + cvr, "cvr": cvr}

    def _score(self, user_side: torch.Tensor, item_side: torch.Tensor, parts: dict[str, Any],
               u_idx: torch.Tensor, i_idx: torch.Tensor) -> torch.Tensor:
        """Ranking score of the pairs: ``sum_t score_weights[t] * log p_t``."""
        logp = self._log_probs(self._task_logits(user_side, item_side, parts, u_idx, i_idx))
        return sum(w * logp[t] for t, w in self.score_weights.items())

    # ------------------------------------------------------------------ training
    def _converted(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if self.conv_keys.numel() == 0:
            return torch.zeros_like(users, dtype=torch.bool)
        q = users * self.n_items + items
        pos = torch.searchsorted(self.conv_keys, q).clamp_(max=self.conv_keys.numel() - 1)
        return self.conv_keys[pos] == q

    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users, items, clicks = batch["user"], batch["item"], batch["label"].float()
        weights = torch.ones_like(clicks)
        if self.hard_negatives > 0 and self.candidates.numel():
            # extra unclicked impressions from a cascade retriever's top-N (as the dcn ranker does)
            pos_users = users[clicks > 0].repeat_interleave(self.hard_negatives)
            hard = self.candidates[pos_users, torch.randint(0, self.candidates.shape[1], (len(pos_users),))]
            ok = (hard >= 0) & ~self._is_positive(pos_users, hard.clamp_min(0))
            users, items = torch.cat([users, pos_users]), torch.cat([items, hard.clamp_min(0)])
            clicks = torch.cat([clicks, torch.zeros(len(pos_users))])
            weights = torch.cat([weights, ok.float()])
        conv = (self._converted(users, items) & (clicks > 0)).float()
        # a clicked item leaves its own user's history summary (the held-out item never is in it)
        exclude = torch.where(clicks > 0, items, torch.full_like(items, -1))
        sets = self._side_sets(users, training=self.training, exclude=exclude)
        user_side, item_side = sets[0][1], sets[0][2]
        logits = self._set_logits(sets, torch.arange(len(users)), items)
        objective = self.hp.objective
        if objective == "cvr_clicked":
            weights = weights * (clicks > 0).float()
        total = weights.sum().clamp_min(1.0)
        loss = torch.zeros(())
        if "click" in logits and "click" not in self._finished:
            loss = loss + (F.binary_cross_entropy_with_logits(logits["click"], clicks, reduction="none")
                           * weights).sum() / total
        if objective == "multitask" and "conversion" not in self._finished:
            click_logit = logits["click"] if self.hp.ctcvr_click_gradient else logits["click"].detach()
            log_p = F.logsigmoid(click_logit) + F.logsigmoid(logits["cvr"])
            log_not = torch.log1p(-log_p.exp().clamp(max=1 - _EPS))
            bce = -(conv * log_p + (1 - conv) * log_not)
            loss = loss + self.hp.conversion_weight * (bce * weights).sum() / total
        elif objective in ("conversion", "cvr_clicked"):
            loss = loss + (F.binary_cross_entropy_with_logits(logits["cvr"], conv, reduction="none")
                           * weights).sum() / total
        if self.reg_weight:
            loss = loss + self.reg_weight * (user_side.pow(2).sum(1).mean() + item_side[items].pow(2).sum(1).mean())
        return loss

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def score_tasks(self, users: torch.Tensor, items: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{task: log p}`` [B, C] of ``items[b, c]`` for ``users[b]`` (``items`` [B, C] or [C] shared)."""
        out = self._own_score_tasks(users, items)
        if self._click_from_state():
            out["click"] = self.click_state._own_score_tasks(users, items)["click"]
            out["conversion"] = out["click"] + out["cvr"]
        return out

    @torch.no_grad()
    def score_candidates(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Ranking scores [B, C] (``sum_t score_weights[t] * log p_t``) of ``items[b, c]`` for ``users[b]``."""
        if not self._click_from_state() and self.cvr_net is None:
            return super().score_candidates(users, items)
        logp = self.score_tasks(users, items)
        return sum(w * logp[t] for t, w in self.score_weights.items())

    def _own_score_tasks(self, users: torch.Tensor, items: torch.Tensor) -> dict[str, torch.Tensor]:
        sets = self._side_sets(users, training=False)
        if items.dim() == 1:
            items = items[None, :].expand(len(users), -1)
        b, c = items.shape
        out = {t: torch.empty(b, c) for t in self.metric_tasks}
        rows_per_chunk = max(1, self.score_chunk // max(c, 1))
        for r0 in range(0, b, rows_per_chunk):
            r1 = min(b, r0 + rows_per_chunk)
            u_idx = torch.arange(r0, r1).repeat_interleave(c)
            logp = self._log_probs(self._set_logits(sets, u_idx, items[r0:r1].reshape(-1)))
            for t in self.metric_tasks:
                out[t][r0:r1] = logp[t].view(r1 - r0, c)
        return out

    @torch.no_grad()
    def predict_tasks(self, users: torch.Tensor, items: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{task: probability}`` of aligned (user, item) pairs, both [P] (click, conversion over the
        impression space, cvr given a click -- those the objective predicts)."""
        out = self._own_predict_tasks(users, items)
        if self._click_from_state():
            out["click"] = self.click_state._own_predict_tasks(users, items)["click"]
            out["conversion"] = out["click"] * out["cvr"]
        return out

    def _own_predict_tasks(self, users: torch.Tensor, items: torch.Tensor) -> dict[str, torch.Tensor]:
        users = torch.as_tensor(users, dtype=torch.long)
        items = torch.as_tensor(items, dtype=torch.long)
        uniq, inverse = torch.unique(users, return_inverse=True)
        sets = self._side_sets(uniq, training=False)
        out = {t: torch.empty(len(users)) for t in self.metric_tasks}
        for p0 in range(0, len(users), self.score_chunk):
            p1 = min(len(users), p0 + self.score_chunk)
            logp = self._log_probs(self._set_logits(sets, inverse[p0:p1], items[p0:p1]))
            for t in self.metric_tasks:
                out[t][p0:p1] = logp[t].exp()
        return out

    @torch.no_grad()
    def predict_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Probabilities of the model's first task (click when predicted, else conversion): ``auc``."""
        return self.predict_tasks(users, items)[self.metric_tasks[0]]

    def task_targets(self, clicks: np.ndarray, events: np.ndarray, ratings: np.ndarray
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Evaluation targets ``{task: (labels, rows the task is defined on)}`` from the rows' clicks,
        label values and ratings, by this model's conversion rule."""
        clicks = np.asarray(clicks, dtype=bool)
        if self.hp.conversion_rating is not None:
            with np.errstate(invalid="ignore"):
                converted = np.asarray(ratings, dtype=np.float64) >= self.hp.conversion_rating
        else:
            converted = np.asarray(events, dtype=np.float64) >= self.hp.conversion_label
        conv = clicks & converted
        everywhere = np.ones(len(clicks), dtype=bool)
        return {"click": (clicks, everywhere), "conversion": (conv, everywhere), "cvr": (conv, clicks)}
