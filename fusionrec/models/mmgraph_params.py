"""The typed parameters of the MMGraph model, and the choices its loss, alignment and fusion take."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from fusionrec.fuse.feature import FUSIONS
from fusionrec.models.params import FeatureNorm, Modalities, ModelParams
from fusionrec.models.sampled_softmax import NEGATIVE_SAMPLERS

LOSSES = ("softmax", "sampled_softmax", "bpr")
ALIGNS = ("none", "infonce")
PROJECTIONS = ("linear", "mlp")
MMGRAPH_FUSIONS = tuple(f for f in FUSIONS if f != "user_attention") + ("sum",)


class MMGraphParams(ModelParams):
    """Typed parameters of :class:`~fusionrec.models.mmgraph.MMGraph` (``model.params`` of a run)."""

    embedding_size: int = Field(64, gt=0, description="width of the ID embeddings and projected content")
    modalities: Modalities = Field(None, description="item modalities to use (null = all of data.modalities)")
    n_ui_layers: int = Field(2, ge=0, description="LightGCN propagation depth over the user-item graph")
    edge_dropout: float = Field(0.0, ge=0, lt=1, description=(
        "share of user-item edges pruned each epoch (FREEDOM's degree-sensitive sampling)"))
    modality_graph: bool = Field(True, description="smooth items over frozen modality item-item kNN graphs")
    knn_k: int = Field(10, ge=1, description="neighbours per item in each modality kNN graph")
    n_mm_layers: int = Field(1, ge=0, description="propagation depth over the modality graph")
    mm_graph_weight: float = Field(1.0, description="weight of the modality-graph item vectors")
    modality_weights: dict[str, float] | None = Field(None, description=(
        "per-modality graph weights, e.g. {text: 0.9, image: 0.1} (null = equal)"))
    use_content: bool = Field(True, description="add projected, fused content to the item ID embedding "
                                                "before propagation")
    zero_cold_ids: bool = Field(True, description="items with no training interaction are placed by "
                                                  "content only")
    content_weight: float = Field(1.0, description="weight of the content vector added to the item embedding")
    cold_negatives: bool = Field(True, description=(
        "items without training interactions are softmax negatives (false: left out of the partition, "
        "their label is unknown)"))
    id_dropout: float = Field(0.0, ge=0, lt=1, description=(
        "share of items whose ID embedding is hidden per training step, so content alone must rank them"))
    cold_dropout: float = Field(0.0, ge=0, lt=1, description=(
        "> 0 adds a content head (adaptive_head.py) that scores items without training interactions in "
        "the final space; this share of warm items is scored by it per step, which trains it"))
    head_hidden: int = Field(256, ge=1, description="hidden width of the content head's per-modality MLPs")
    head_dropout: float = Field(0.2, ge=0, lt=1, description="dropout inside the content head")
    head_detach: bool = Field(False, description=(
        "the content head learns in a loss of its own against the graph's detached final vectors: the "
        "graph trains as without a head, so warm items keep the plain model's scores"))
    cold_neighbours: float = Field(0.0, ge=0, description=(
        "at inference, a new item's head vector plus this weight x the mean final vector of its warm "
        "neighbours in the content kNN graph, renormalised (0 = the head alone; needs cold_dropout > 0)"))
    cold_gate: float = Field(0.0, ge=0, description=(
        "per-user cold margin: cold_margin - cold_gate * (log(1 + user's training interactions) - "
        "mean); more active users see new items more readily (0 = one margin for all)"))
    cold_margin: float = Field(0.0, ge=0, description=(
        "at inference, subtracted from the cosine score of items without training interactions: how "
        "readily new items enter the lists (0 = as trained)"))
    feature_norm: FeatureNorm = Field("l2", description="feature normalisation before the projections")
    projection: Literal[PROJECTIONS] = Field(  # type: ignore[valid-type]
        "linear", description="each modality -> the ID space")
    hidden_dim: int | None = Field(None, ge=1, description="hidden width of the mlp projection "
                                                           "(null = automatic)")
    fusion: Literal[MMGRAPH_FUSIONS] = Field("weighted_sum", description=(  # type: ignore[valid-type]
        "how projected modalities become one content vector (mask-aware)"))
    modality_dropout: float = Field(0.0, ge=0, lt=1, description="share of modalities hidden in training")
    align: Literal[ALIGNS] = Field("infonce", description=(  # type: ignore[valid-type]
        "InfoNCE between fused content and the item ID embedding"))
    align_weight: float = Field(0.1, ge=0, description="weight of the alignment loss")
    align_temperature: float = Field(0.2, gt=0, description="temperature of the alignment loss")
    align_batch: int = Field(512, ge=0, description="items per step in the alignment loss (0 = all)")
    loss: Literal[LOSSES] = Field("softmax", description=(  # type: ignore[valid-type]
        "softmax: full catalogue; sampled_softmax: n_negatives shared negatives; bpr"))
    temperature: float = Field(0.2, gt=0, description="cosine scores are divided by it")
    normalize: bool = Field(True, description="cosine scores (unit user and item vectors)")
    item_bias: bool = Field(False, description="per-item score bias (popularity); 0 for cold items")
    n_negatives: int = Field(256, ge=1, description="shared negatives per step (sampled_softmax only)")
    full_softmax_max_items: int = Field(50_000, ge=0, description=(
        "loss softmax on a catalogue above this many items trains as sampled_softmax (never a "
        "[batch, n_items] matrix); with a large train.batch_size an epoch is a few whole-graph steps "
        "(docs/scaling.md)"))
    negative_sampler: Literal[NEGATIVE_SAMPLERS] = Field("uniform", description=(  # type: ignore[valid-type]
        "sampled_softmax negatives: uniform, or popularity (count^0.75, logQ-corrected)"))
    reg_weight: float = Field(0.0, ge=0, description="L2 on the batch's user and positive item embeddings")

    @field_validator("fusion", mode="before")
    @classmethod
    def _item_side_fusion(cls, value: Any) -> Any:
        if value == "user_attention":
            raise ValueError("user-conditioned fusion does not fit a graph model: item vectors are "
                             "propagated before any user is known")
        return value

    @model_validator(mode="after")
    def _detach_needs_a_head(self) -> MMGraphParams:
        if self.head_detach and self.cold_dropout <= 0:
            raise ValueError("head_detach trains the content head, and there is none: set cold_dropout "
                             "> 0 (e.g. 0.3), the share of warm items the head scores per step")
        if self.cold_neighbours > 0 and self.cold_dropout <= 0:
            raise ValueError("cold_neighbours is added to the content head's vectors, and there is no head: "
                             "set cold_dropout > 0 (e.g. 0.3), or cold_neighbours 0")
        return self
