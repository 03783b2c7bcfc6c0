"""Adam for models whose embedding tables get sparse (row) gradients.

A model training on a catalogue of millions touches a few thousand rows of its ID
tables per step. With dense gradients every step still writes a zero-filled
``[n_items, d]`` gradient and Adam walks every row: at 1M items x 64 that is ~0.7 s
a step on one core, so an epoch (whose steps grow with the events) becomes quadratic
in the catalogue. Tables built as ``nn.Embedding(..., sparse=True)`` whose weight is
marked ``weight.sparse_grad = True`` get torch's :class:`torch.optim.SparseAdam`
(lazy Adam: only the rows in the batch move, cost linear in the batch); every other
parameter keeps the (fused) dense Adam of :func:`fusionrec.train.optim.make_adam`.
``train.weight_decay`` applies to the dense parameters only (SparseAdam has none).
"""
from __future__ import annotations

from typing import Any

import torch


def is_sparse(p: torch.nn.Parameter) -> bool:
    """True for a parameter whose model promises sparse gradients (``p.sparse_grad = True``)."""
    return bool(getattr(p, "sparse_grad", False))


class DenseSparseAdam:
    """Dense Adam for most parameters, SparseAdam for the row-sparse ones, stepped together.

    Quacks like one optimizer for the trainer: ``param_groups`` (dense groups first, so
    ``param_groups[0]["lr"]`` is the configured learning rate), ``zero_grad``, ``step``,
    ``state_dict`` / ``load_state_dict`` (both parts, for checkpoints and resume).
    """

    def __init__(self, dense: torch.optim.Optimizer | None, sparse: torch.optim.SparseAdam) -> None:
        self.dense = dense
        self.sparse = sparse

    @property
    def parts(self) -> list[torch.optim.Optimizer]:
        return [o for o in (self.dense, self.sparse) if o is not None]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for o in self.parts for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.parts:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.parts:
            o.step()

    def state_dict(self) -> dict[str, Any]:
        return {"dense": self.dense.state_dict() if self.dense is not None else None,
                "sparse": self.sparse.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.dense is not None and state.get("dense") is not None:
            self.dense.load_state_dict(state["dense"])
        self.sparse.load_state_dict(state["sparse"])


def make_dense_sparse_adam(params: list[torch.nn.Parameter], lr: float, weight_decay: float,
                           dense_factory: Any) -> DenseSparseAdam:
    """Split ``params`` by :func:`is_sparse`; ``dense_factory(params, lr, weight_decay)`` builds the dense part."""
    sparse = [p for p in params if is_sparse(p)]
    dense = [p for p in params if not is_sparse(p)]
    return DenseSparseAdam(dense_factory(dense, lr, weight_decay) if dense else None,
                           torch.optim.SparseAdam(sparse, lr=lr))


__all__ = ["DenseSparseAdam", "is_sparse", "make_dense_sparse_adam"]
