"""The one contract every recommender in fusionrec implements.

In the spirit of RecBole/MMRec, a model is a ``torch.nn.Module`` built from a
:class:`~fusionrec.data.dataset.TrainData` view and its hyper-parameters,
declared once as the nested ``Params`` class (typed fields with defaults and
one-line meanings, see :mod:`fusionrec.models.params`; ``fusionrec models show
NAME`` prints them). The model reads the validated values from ``self.hp``;
``self.params`` is the same as a plain dict (saved with the model, printed). It exposes:

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

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from pydantic import BaseModel
from torch import nn

from fusionrec.data.dataset import TrainData
from fusionrec.models.params import ModelParams, check_params

# Batch formats the trainer's samplers can produce.
#  pairwise:  {"user": [B], "pos_item": [B], "neg_item": [B]}       (BPR-style)
#  pointwise: {"user": [B], "item": [B], "label": [B] float}       (CTR-style, sampled negatives)
#  user:      {"user": [B]}                                        (whole-row models)
#  sequence:  {"user": [B], "input": [B, L], "target": [B, L]}     (next-item models; see
#             fusionrec.train.sequence_sampling)
BATCH_KINDS = ("pairwise", "pointwise", "user", "sequence")


class RecModel(nn.Module):
    """Base class: subclasses set ``name`` and implement the contract methods."""

    name: ClassVar[str] = "base"
    trainable: ClassVar[bool] = True
    batch_kind: ClassVar[str] = "pairwise"
    # True for models that read item modalities: the pipeline gets their features first
    uses_content: ClassVar[bool] = False

    class Params(ModelParams):
        """No hyper-parameters."""

    def __init__(self, data: TrainData, params: Mapping[str, Any] | BaseModel | None = None) -> None:
        super().__init__()
        self.n_users = data.n_users
        self.n_items = data.n_items
        self.hp = self.validate_params(params)
        self.params: dict[str, Any] = self.hp.model_dump(mode="json")

    @classmethod
    def validate_params(cls, params: Mapping[str, Any] | BaseModel | None = None,
                        where: str = "model.params") -> Any:
        """``params`` checked against :attr:`Params` with the defaults filled in (a UserError otherwise)."""
        return check_params(cls.Params, params, cls.name, where)

    @property
    def num_negatives(self) -> int:
        """Sampled negatives per positive for the pointwise sampler (a ``num_negatives`` param if declared)."""
        return int(getattr(self.hp, "num_negatives", 4))

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

    # plain tensor attributes that must stay on the host when the model moves (e.g. an RNG state)
    host_tensors: ClassVar[tuple[str, ...]] = ()

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> RecModel:
        """``model.to(device)`` / ``.double()`` also carry the tensors a model keeps as plain attributes.

        Derived tensors -- sparse graphs, history matrices, lookup tables, cached vectors -- are not
        parameters or buffers (sparse tensors cannot be saved, and they are rebuilt from the data), so
        ``nn.Module`` would leave them behind; here they follow the parameters, as do tensors inside a
        tuple, list or dict attribute (caches). Names in :attr:`host_tensors` stay where they are.
        """
        super()._apply(fn, recurse)
        for key, value in list(vars(self).items()):
            if key in ("_parameters", "_buffers", "_modules") or key in self.host_tensors:
                continue
            moved = _map_tensors(value, fn)
            if moved is not value:
                object.__setattr__(self, key, moved)
        return self

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))


def _map_tensors(value: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``fn`` applied to a tensor, or to the tensors of a tuple / list / dict (one level); ``value`` itself
    when it holds none (so untouched attributes keep their identity)."""
    if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
        return fn(value)
    if isinstance(value, (tuple, list)) and any(isinstance(v, torch.Tensor) for v in value):
        return type(value)(fn(v) if isinstance(v, torch.Tensor) else v for v in value)
    if isinstance(value, dict) and not isinstance(value, nn.Module) and any(
            isinstance(v, torch.Tensor) for v in value.values()):
        return {k: (fn(v) if isinstance(v, torch.Tensor) else v) for k, v in value.items()}
    return value
