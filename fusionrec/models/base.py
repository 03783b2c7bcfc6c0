"""The one contract every recommender in fusionrec implements.

In the spirit of RecBole/MMRec, a model is a ``torch.nn.Module`` built from a
:class:`~fusionrec.data.dataset.TrainData` view and a dict of hyper-parameters
(defaults in ``fusionrec/configs/models/<name>.yaml``), and exposes:

* ``calculate_loss(batch) -> scalar tensor`` for gradient training; the batch
  is a dict of tensors made by the sampler named in ``batch_kind``;
* ``full_sort_predict(users) -> [len(users), n_items]`` scores over the whole
  catalogue (higher is better), used by the evaluator and by serving;
* ``fit(data)`` for closed-form models (``trainable = False``) such as
  Popularity or ItemKNN, which the trainer calls instead of an epoch loop;
* optional hooks: ``pre_epoch()`` (before each epoch, e.g. to resample a
  graph) and ``post_fit()``; ``item_embeddings()``/``user_embeddings()`` when
  the model scores by an inner product, which lets serving use an ANN index.

One trainer (:mod:`fusionrec.train`) and one evaluator (:mod:`fusionrec.evaluate`)
serve all models through this contract.
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

import torch
from torch import nn

from fusionrec.data.dataset import TrainData
from fusionrec.errors import UserError

# Batch formats the trainer's samplers can produce.
#  pairwise:  {"user": [B], "pos_item": [B], "neg_item": [B]}       (BPR-style)
#  pointwise: {"user": [B], "item": [B], "label": [B] float}       (CTR-style, sampled negatives)
#  user:      {"user": [B]}                                        (whole-row models)
BATCH_KINDS = ("pairwise", "pointwise", "user")


class RecModel(nn.Module):
    """Base class: subclasses set ``name`` and implement the contract methods."""

    name: ClassVar[str] = "base"
    trainable: ClassVar[bool] = True
    batch_kind: ClassVar[str] = "pairwise"

    def __init__(self, data: TrainData, params: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.n_users = data.n_users
        self.n_items = data.n_items
        self.params = dict(params or {})

    # ------------------------------------------------------------ required
    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} is not trainable by gradient")

    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------ optional
    def fit(self, data: TrainData) -> None:
        """Closed-form fitting for models with ``trainable = False``."""
        raise NotImplementedError(f"{type(self).__name__} is trained by the epoch loop, not fit()")

    def pre_epoch(self) -> None:
        """Called by the trainer before every training epoch."""

    def user_embeddings(self) -> torch.Tensor | None:
        """[n_users, d] when scores are ``user_emb @ item_emb.T`` (enables ANN serving)."""
        return None

    def item_embeddings(self) -> torch.Tensor | None:
        """[n_items, d] matching :meth:`user_embeddings`."""
        return None

    def param(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)

    def choice(self, key: str, default: str, allowed: Sequence[str],
               hints: Mapping[str, str] | None = None) -> str:
        """String parameter ``key`` (``default`` when unset), which must be one of ``allowed``.

        ``hints`` maps a known-bad value to an explanation appended to the error.
        """
        value = str(self.param(key, default))
        if value not in allowed:
            hint = (hints or {}).get(value, "")
            raise UserError(f"{self.name}: {key}={value!r} is not supported{hint}", f"model.params.{key}",
                            f"use one of {tuple(allowed)}")
        return value

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))


def require(params: dict[str, Any], key: str, model: str) -> Any:
    if key not in params:
        raise KeyError(
            f"model {model!r} needs hyper-parameter {key!r}; set it in "
            f"fusionrec/configs/models/{model}.yaml or with --set model.{key}=VALUE"
        )
    return params[key]
