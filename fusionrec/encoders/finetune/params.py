"""Typed settings of a fine-tuned text tower (``model.params.text_tuning`` of models that opt in).

Kept free of torch imports so validating a run's configuration stays cheap.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from fusionrec.models.params import ModelParams

TUNE_MODES = ("frozen", "full", "lora", "side_adapter")


class TextTuneParams(ModelParams):
    """How a model adapts its text encoder with the recommender's loss (mode ``frozen``: not at all)."""

    mode: Literal[TUNE_MODES] = Field("frozen", description=(  # type: ignore[valid-type]
        "frozen: the stored features; full: train the top `layers` transformer layers; lora: LoRA (peft) on "
        "them; side_adapter: a small side network over the frozen layers' cached hidden states"))
    modality: str = Field("text", description="the text modality whose features the tower replaces")
    model_path: str | None = Field(None, description=(
        "local sentence-transformers / Hugging Face folder (null = the shipped all-MiniLM-L6-v2); use the "
        "model the text features were encoded with"))
    template: str = Field("{text}", description=(
        "item text template over item-table columns (as the text encoder's, e.g. '{title}. {genres}. {plot}')"))
    max_seq_length: int = Field(128, ge=8, description="tokens per item text (longer texts are truncated)")
    layers: int = Field(2, ge=1, description=(
        "full / lora: trainable top transformer layers (the layers below are frozen and their output is cached "
        "once per item); more than the model has = all of them"))
    lr_mult: float = Field(0.1, gt=0, description="learning rate of the tower = train.lr x lr_mult")
    grad_items: int = Field(32, ge=1, description=(
        "full / lora: batch items re-encoded with gradient per step; the others come from a bank of their "
        "latest encodings, refreshed for every item before evaluation"))
    lora_r: int = Field(8, ge=1, description="lora: rank of the update matrices")
    lora_alpha: float = Field(16.0, gt=0, description="lora: scaling numerator (update x alpha / r)")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="lora: dropout on the LoRA input")
    lora_targets: list[str] = Field(["query", "key", "value", "dense"], description=(
        "lora: names of the linear layers that get LoRA updates (BERT naming)"))
    adapter_dim: int = Field(64, ge=1, description="side_adapter: width of the side network")
    cache_dir: str | None = Field(None, description=(
        "where token ids and frozen hidden states are cached (null = $FUSIONREC_CACHE/finetune, next to the "
        "feature store)"))
    batch_size: int = Field(64, ge=1, description="items per batch of the one-off frozen pass and refreshes")
