"""Alignment of modalities into one shared space.

* :mod:`.projection` -- linear / MLP projection of each modality (and ID embeddings);
* :mod:`.contrastive` -- InfoNCE with temperature (modality<->modality, content<->ID);
* :mod:`.cca` -- deep-CCA style correlation maximisation;
* :mod:`.matching` -- cross-attention matching between token sets;
* :mod:`.aligner` -- :class:`Aligner`, the config-selectable loss models use.
"""
from fusionrec.align.aligner import ALIGN_METHODS, Aligner
from fusionrec.align.cca import CCALoss, canonical_correlations, cca_loss
from fusionrec.align.contrastive import (
    InfoNCE,
    info_nce,
    multiview_info_nce,
    retrieval_accuracy,
)
from fusionrec.align.matching import CrossAttentionMatcher, FeatureTokenizer
from fusionrec.align.projection import ModalityProjector, Projection

__all__ = [
    "ALIGN_METHODS",
    "Aligner",
    "CCALoss",
    "CrossAttentionMatcher",
    "FeatureTokenizer",
    "InfoNCE",
    "ModalityProjector",
    "Projection",
    "canonical_correlations",
    "cca_loss",
    "info_nce",
    "multiview_info_nce",
    "retrieval_accuracy",
]
