"""Fusion of modalities.

* feature level (:mod:`.feature`): concat, learned weighted sum, attention over
  modalities (per item, optionally user-conditioned), gating; :mod:`.user_attention`
  scores every user x item pair under user-conditioned attention at once;
* model level (:class:`~fusionrec.fuse.feature.JointFusion`): one Transformer over all modality tokens;
* decision level (:mod:`.decision`): per-modality scorers with learned weights,
  reciprocal-rank and Borda fusion.

All are mask-aware (absent modalities excluded and weights renormalised, never
imputed); :func:`modality_dropout` hides modalities at random during training.
"""
from fusionrec.fuse.decision import ScoreFusion, borda_fusion, reciprocal_rank_fusion
from fusionrec.fuse.feature import (
    FUSIONS,
    AttentionFusion,
    ConcatFusion,
    GatedFusion,
    JointFusion,
    ModalityFusion,
    WeightedSumFusion,
    build_fusion,
    masked_softmax,
    modality_dropout,
    stack_views,
)
from fusionrec.fuse.user_attention import UserConditionedAttention

__all__ = [
    "FUSIONS",
    "AttentionFusion",
    "ConcatFusion",
    "GatedFusion",
    "JointFusion",
    "ModalityFusion",
    "ScoreFusion",
    "UserConditionedAttention",
    "WeightedSumFusion",
    "borda_fusion",
    "build_fusion",
    "masked_softmax",
    "modality_dropout",
    "reciprocal_rank_fusion",
    "stack_views",
]
