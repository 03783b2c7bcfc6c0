"""The typed parameters of the two-tower model, and the choices its fusion, history and loss take."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fusionrec.align.aligner import ALIGN_METHODS
from fusionrec.encoders.finetune.params import ImageTuneParams, TextTuneParams
from fusionrec.fuse.feature import FUSIONS
from fusionrec.models.params import FeatureNorm, Modalities, ModelParams
from fusionrec.models.sampled_softmax import NEGATIVE_SAMPLERS

# decision level: one scorer per modality (late: learned score weights; rrf/borda: rank fusion)
BLOCK_FUSIONS = ("late", "rrf", "borda")
TWO_TOWER_FUSIONS = FUSIONS + BLOCK_FUSIONS
HISTORY_ENCODERS = ("none", "mean", "attention", "transformer")
LOSSES = ("softmax", "full_softmax", "bpr")
# losses on cosine scores / temperature
COSINE_LOSSES = ("softmax", "full_softmax")


class TwoTowerParams(ModelParams):
    """Typed parameters of :class:`~fusionrec.models.two_tower.TwoTower` (``model.params`` of a run)."""

    embedding_size: int = Field(64, gt=0, description="width of the shared space (IDs, projected modalities)")
    modalities: Modalities = Field(None, description="item modalities to use (null = all of data.modalities)")
    feature_norm: FeatureNorm = Field("standard", description="feature normalisation (statistics over "
                                                              "present rows only)")
    projection: Literal["linear", "mlp"] = Field("mlp", description="each modality -> shared space")
    projection_dropout: float = Field(0.0, ge=0, lt=1, description="dropout inside the projections")
    fusion: Literal[TWO_TOWER_FUSIONS] = Field("attention", description=(  # type: ignore[valid-type]
        "how projected modalities become one item vector; user_attention = weights per user and item; "
        "late = one scorer per modality with learned weights, rrf / borda = their rankings fused by "
        "reciprocal rank / Borda count (decision level)"))
    rrf_k: float = Field(60.0, gt=0, description="k of reciprocal rank fusion: 1/(k + rank)")
    joint_layers: int = Field(1, ge=1, description="encoder layers of the joint fusion")
    joint_heads: int = Field(2, ge=1, description="attention heads of the joint fusion")
    align: Literal[ALIGN_METHODS] = Field("infonce", description=(  # type: ignore[valid-type]
        "alignment loss between an item's modalities (and its ID embedding)"))
    align_weight: float = Field(0.1, ge=0, description="weight of the alignment loss")
    align_id: bool = Field(True, description="also align the fused content with the item ID embedding "
                                             "(warm items)")
    align_temperature: float = Field(0.2, gt=0, description="temperature of the alignment loss")
    align_batch: int = Field(512, ge=1, description="items per step in the alignment loss")
    align_tokens: int = Field(2, ge=1, description="tokens per view for align: matching")
    matching_batch: int = Field(128, ge=2, description="items per step for align: matching (its cost grows "
                                                       "with batch^2 x tokens^2; 128 x 2 tokens keeps an "
                                                       "epoch near infonce's)")
    history: Literal[HISTORY_ENCODERS] = Field("mean", description=(  # type: ignore[valid-type]
        "user tower history encoder"))
    history_len: int = Field(50, ge=1, description="history items seen by attention/transformer (mean uses "
                                                   "the whole history)")
    use_id: bool = Field(True, description="item ID embedding (zeroed for items without training "
                                           "interactions)")
    use_user_id: bool = Field(True, description="user ID embedding in the user tower (zeroed for users "
                                                 "without training events)")
    user_attributes: bool = Field(False, description="user table attributes in the user tower (data."
                                                     "user_columns.attributes): new users from attributes")
    user_attribute_bins: int = Field(8, ge=2, description="quantile bins of a numeric user attribute")
    user_attribute_min_count: int = Field(5, ge=1, description="users a categorical value needs for its "
                                                              "own embedding (rarer: <other>)")
    user_id_dropout: float = Field(0.0, ge=0, le=1, description="share of users trained as new users: ID "
                                                                "dropped, only attributes and a few events")
    new_user_events: int = Field(3, ge=0, description="a user trained as new sees 0..N random events of "
                                                      "its history (what a new user has after N events)")
    new_user_prior: bool = Field(False, description=(
        "users not in training also get log p(item | attributes) from a second attribute head trained as a "
        "full-softmax multinomial over the catalogue (models/new_user_prior.py): the popularity within "
        "their segment, which the logQ-corrected softmax takes out"))
    new_user_prior_weight: float = Field(1.0, ge=0, description="weight of the prior's log-probabilities "
                                                                "added to the tower's for a new user")
    new_user_prior_power: float = Field(1.0, ge=0, description="a training event weighs 1/events(user)^power "
                                                               "in the prior (1: every user counts equally)")
    new_user_prior_decay: float = Field(0.0, ge=0, description="a new user with n first events gets the prior "
                                                               "at weight / (1 + decay * n): its events say more")
    new_user_recency_days: float = Field(0.0, ge=0, description=(
        "with new_user_prior: also the items' share of training events in the previous N-day window before "
        "the user's arrival, with a learned weight (0 = off)"))
    use_content: bool = Field(True, description="item content in the item tower")
    id_dropout: float = Field(0.1, ge=0, le=1, description="share of item IDs dropped in training so content "
                                                           "alone must rank")
    modality_dropout: float = Field(0.1, ge=0, lt=1, description="share of modalities hidden in training "
                                                                 "(never all of an item's)")
    loss: Literal[LOSSES] = Field("softmax", description=(  # type: ignore[valid-type]
        "softmax: in-batch, logQ-corrected, cosine scores; full_softmax: over the whole catalogue "
        "(exact, for catalogues of a few thousand items); bpr: sampled negative"))
    temperature: float = Field(0.1, gt=0, description="softmax temperature on cosine scores")
    logq: bool = Field(True, description="subtract log p(item in batch) from in-batch logits")
    full_softmax_max_items: int = Field(50_000, ge=0, description=(
        "catalogues above this many items train batch-local (two_tower_scale.py): only the batch's "
        "positives, sampled negatives and sampled histories go through the towers, softmax over in-batch + "
        "sampled_negatives with logQ correction, sparse ID gradients; at or below, the exact paths"))
    sampled_negatives: int = Field(256, ge=0, description="negatives drawn per step, shared by the batch, "
                                                          "on top of the in-batch ones (above "
                                                          "full_softmax_max_items only)")
    negative_sampler: Literal[NEGATIVE_SAMPLERS] = Field("uniform", description=(  # type: ignore[valid-type]
        "distribution of the sampled negatives: uniform, or popularity (count^0.75)"))
    reg_weight: float = Field(0.0, ge=0, description="EmbLoss weight (bpr loss only)")
    item_bias: bool = Field(False, description="a learned score bias per item (a popularity prior, what a "
                                               "user with little signal falls back on); items without "
                                               "training events get the mean bias")
    text_tuning: TextTuneParams = Field(default_factory=TextTuneParams, description=(
        "fine-tune the text encoder with this model's loss (full / lora / side_adapter; docs/guide/finetune.md)"))
    image_tuning: ImageTuneParams = Field(default_factory=ImageTuneParams, description=(
        "fine-tune the image encoder (EfficientNet-Lite0's last blocks, full / lora) with this model's loss "
        "(docs/guide/finetune.md)"))

    @model_validator(mode="after")
    def _towers_not_empty(self) -> TwoTowerParams:
        if not (self.use_id or self.use_content):
            raise ValueError("use_id and use_content are both false: the item tower is empty")
        if not (self.use_user_id or self.history != "none" or self.user_attributes):
            raise ValueError("use_user_id is false, history is none and user_attributes is false: "
                             "the user tower is empty")
        return self


__all__ = ["BLOCK_FUSIONS", "COSINE_LOSSES", "HISTORY_ENCODERS", "LOSSES", "TWO_TOWER_FUSIONS", "TwoTowerParams"]
