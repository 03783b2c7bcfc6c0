"""The optimizer every gradient model trains with: Adam (fused kernel when it can), one group per learning-rate scale."""
from __future__ import annotations

from typing import Any

import torch


def make_adam(params: list[torch.nn.Parameter], lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam, using the fused CPU / CUDA kernel when every parameter allows it.

    Same algorithm and state layout as the default Adam (checkpoints are
    interchangeable), but one kernel per tensor instead of a chain of ops: on
    BPR-sized embedding tables (26k x 64) a step costs ~9 ms instead of ~25 ms CPU.
    Parameters marked ``sparse_grad`` (ID tables of very large catalogues) go to SparseAdam
    (:mod:`fusionrec.train.sparse_optim`), so a step costs the batch's rows, not the table.
    """
    if any(getattr(p, "sparse_grad", False) for p in params):
        from fusionrec.train.sparse_optim import make_dense_sparse_adam

        return make_dense_sparse_adam(params, lr, weight_decay, make_adam)  # type: ignore[return-value]
    fusable = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64) and p.layout == torch.strided
                  for p in params)
    groups = lr_groups(params, lr)
    if fusable:
        try:
            return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, TypeError, ValueError):  # older torch without CPU fused Adam
            pass
    return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)


def lr_groups(params: list[torch.nn.Parameter], lr: float) -> list[Any]:
    """One param group per ``p.lr_scale`` (set by e.g. a fine-tuned text tower: a smaller learning rate for
    pretrained weights); the plain list when no parameter has one, so checkpoints keep their layout."""
    scales = [float(getattr(p, "lr_scale", 1.0)) for p in params]
    if all(s == 1.0 for s in scales):
        return list(params)
    return [{"params": [p for p, s in zip(params, scales) if s == scale], "lr": lr * scale}
            for scale in dict.fromkeys(scales)]


__all__ = ["lr_groups", "make_adam"]
