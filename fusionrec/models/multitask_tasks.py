"""The multitask ranker's per-task machinery (:mod:`fusionrec.models.multitask`).

* ``shared_fields: false`` -- the conversion side is a conversion-objective copy of the network
  (``cvr_net``) with its own fields, initial draw and random stream, so the click side trains
  exactly as a click-only model;
* ``task_checkpoints`` -- the trainer's per-task selection (:mod:`fusionrec.train.averaging`):
  ``task_valid_metrics`` names each task's metric, ``finish_task`` stops training a task whose
  patience ran out, ``use_task_states`` serves pCTR from a frozen copy holding the click-best
  state (``click_state``) and pCVR from the conversion-best one.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from fusionrec.data.dataset import TrainData
from fusionrec.errors import UserError

log = logging.getLogger("fusionrec.models.multitask")


class TaskStates:
    """Mixin of :class:`~fusionrec.models.multitask.MultiTaskRanker` (reads its ``hp``, ``_sides``,
    ``_first_layer_parts``, ``_task_logits`` and ``metric_tasks``)."""

    hp: Any
    cvr_net: Any
    click_state: Any
    metric_tasks: tuple[str, ...]
    _finished: set[str]

    def _init_cvr_net(self, data: TrainData) -> None:
        """``shared_fields: false``: the conversion side's own fields and network (a conversion-objective
        copy), with its own initial draw and random stream, so the click side's are untouched."""
        if self.hp.architecture != "esmm":
            raise UserError(f"multitask: shared_fields: false needs architecture esmm, not "
                            f"{self.hp.architecture!r}", "model.params.shared_fields",
                            "set model.params.architecture=esmm, or keep shared_fields: true")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch.initial_seed() + 7919)
            params = {**self.hp.model_dump(), "objective": "conversion", "shared_fields": True,
                      "task_checkpoints": False}
            self.cvr_net = type(self)(data, params)
            self._cvr_rng = torch.random.get_rng_state()

    @contextlib.contextmanager
    def _cvr_random(self) -> Iterator[None]:
        """The conversion side's dropout draws come from its own stream (shared_fields: false)."""
        outer = torch.random.get_rng_state()
        torch.random.set_rng_state(self._cvr_rng)
        try:
            yield
        finally:
            self._cvr_rng = torch.random.get_rng_state()
            torch.random.set_rng_state(outer)

    def _side_sets(self, users: torch.Tensor, training: bool, exclude: torch.Tensor | None = None
                   ) -> list[tuple[Any, torch.Tensor, torch.Tensor, dict[str, Any]]]:
        """``(network, user side, item side, first-layer parts)`` of this network and, with
        ``shared_fields: false``, of the conversion side's."""
        user_side, item_side = self._sides(users, training=training, exclude=exclude)
        sets = [(self, user_side, item_side, self._first_layer_parts(user_side, item_side))]
        if self.cvr_net is not None:
            with self._cvr_random():
                u, i = self.cvr_net._sides(users, training=training, exclude=exclude)
                sets.append((self.cvr_net, u, i, self.cvr_net._first_layer_parts(u, i)))
        return sets

    def _set_logits(self, sets: list[tuple[Any, torch.Tensor, torch.Tensor, dict[str, Any]]],
                    u_idx: torch.Tensor, i_idx: torch.Tensor) -> dict[str, torch.Tensor]:
        logits: dict[str, torch.Tensor] = {}
        for net, user_side, item_side, parts in sets:
            if net is self:
                logits.update(self._task_logits(user_side, item_side, parts, u_idx, i_idx))
            else:
                with self._cvr_random():
                    logits.update(net._task_logits(user_side, item_side, parts, u_idx, i_idx))
        return logits

    def _init_click_state(self, data: TrainData) -> None:
        """A frozen copy of the network that serves pCTR once the click-best state is known
        (``task_checkpoints``); built with the random state restored, so the trained model
        starts from the same weights as without it."""
        cpu_rng, np_rng = torch.random.get_rng_state(), np.random.get_state()
        params = {**self.hp.model_dump(), "objective": "click", "task_checkpoints": False}
        self.click_state = type(self)(data, params)
        torch.random.set_rng_state(cpu_rng)
        np.random.set_state(np_rng)
        self.click_state.requires_grad_(False)
        # persistent: a saved model serves pCTR from the click-best state too
        self.register_buffer("click_state_used", torch.zeros((), dtype=torch.bool))

    def task_valid_metrics(self) -> dict[str, str]:
        """``{task: valid metric}`` for the trainer's per-task selection (empty: one state for all)."""
        if not hasattr(self, "click_state"):
            return {}
        return {"click": "auc_click", "conversion": "auc_conversion"}

    def finish_task(self, task: str) -> None:
        """Stop training ``task`` (the trainer: its patience ran out); the other task trains on."""
        self._finished.add(task)

    def use_task_states(self, states: Mapping[str, Mapping[str, torch.Tensor]],
                        epochs: Mapping[str, int] | None = None) -> None:
        """Serve pCVR from ``states["conversion"]`` (this network) and pCTR from ``states["click"]``
        (the frozen copy); pCTCVR is their product."""
        def own(state: Mapping[str, torch.Tensor], skip: tuple[str, ...]) -> dict[str, torch.Tensor]:
            return {k: v for k, v in state.items() if not k.startswith(skip)}

        if "conversion" in states:
            self.load_state_dict(own(states["conversion"], ("click_state",)), strict=False)
        if "click" in states:   # the click copy has no conversion side of its own
            self.click_state.load_state_dict(own(states["click"], ("click_state", "cvr_net")))
            self.click_state_used.fill_(True)
        self._finished.clear()
        log.info("multitask: pCTR from the click-best state, pCVR from the conversion-best state (epochs %s)",
                 dict(epochs or {}))

    def _click_from_state(self) -> bool:
        return hasattr(self, "click_state") and bool(self.click_state_used) and "click" in self.metric_tasks
