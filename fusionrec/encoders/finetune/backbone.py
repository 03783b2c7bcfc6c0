"""The text backbone split where fine-tuning starts: frozen bottom layers, trainable top layers, pooling.

A sentence-transformers folder (all-MiniLM-L6-v2) or a plain Hugging Face folder is
loaded as its transformer (``transformers.AutoModel``) plus the pooling that
sentence-transformers applies (``1_Pooling/config.json``; mean pooling when the
folder has none, which is what sentence-transformers adds to a plain folder). Only
BERT-style encoders (``model.encoder.layer``: BERT, MiniLM, RoBERTa, MPNet...) can be
split into layers; another architecture is a clear error.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from fusionrec.encoders.base import dir_fingerprint
from fusionrec.errors import UserError


def resolve_model_path(model_path: str | None) -> Path:
    """The local folder of the text model (None = the shipped all-MiniLM-L6-v2)."""
    from fusionrec.encoders.text import default_minilm_path

    path = Path(model_path).expanduser() if model_path else default_minilm_path()
    if not path.is_dir():
        raise UserError(f"text model folder {path} does not exist", "model.params.text_tuning.model_path",
                        "pass a local sentence-transformers / Hugging Face folder; models are never downloaded")
    return path


def pooling_mode(path: Path) -> str:
    """``mean`` or ``cls``: how sentence-transformers pools this folder's token states."""
    cfg = path / "1_Pooling" / "config.json"
    if not cfg.is_file():
        return "mean"
    conf = json.loads(cfg.read_text())
    if conf.get("pooling_mode_cls_token"):
        return "cls"
    if conf.get("pooling_mode_mean_tokens", True):
        return "mean"
    raise UserError(f"the pooling of {path} is not supported for fine-tuning: {conf}",
                    "model.params.text_tuning.model_path", "use a model with mean or CLS pooling")


def normalises(path: Path) -> bool:
    """True when the sentence-transformers pipeline ends with a Normalize module (unit vectors)."""
    modules = path / "modules.json"
    if not modules.is_file():
        return False
    return any(str(m.get("type", "")).endswith(".Normalize") for m in json.loads(modules.read_text()))


def pool(states: torch.Tensor, mask: torch.Tensor, mode: str, normalize: bool = False) -> torch.Tensor:
    """[B, T, H] token states -> [B, H] sentence vectors (mask: [B, T], 1 = real token)."""
    if mode == "cls":
        out = states[:, 0]
    else:
        m = mask.to(states.dtype).unsqueeze(-1)
        out = (states * m).sum(1) / m.sum(1).clamp_min(1.0)
    return torch.nn.functional.normalize(out, dim=-1) if normalize else out


class Backbone:
    """A loaded text model: tokenizer, transformer, its layer list and pooling, with a stable id."""

    def __init__(self, model_path: str | None, max_seq_length: int) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.path = resolve_model_path(model_path)
        self.max_seq_length = int(max_seq_length)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(self.path), local_files_only=True)
        except Exception as err:  # the libraries raise many types for a bad folder
            raise UserError(f"could not load a text model from {self.path}: {err}",
                            "model.params.text_tuning.model_path",
                            "pass a Hugging Face model folder (config.json + weights + tokenizer)") from err
        encoder = getattr(self.model, "encoder", None)
        layers = getattr(encoder, "layer", None)
        if not isinstance(layers, nn.ModuleList):
            raise UserError(f"{self.path}: {type(self.model).__name__} has no encoder.layer list to fine-tune",
                            "model.params.text_tuning.model_path",
                            "use a BERT-style encoder (BERT, MiniLM, RoBERTa, MPNet), or text_tuning.mode: frozen")
        self.layers: nn.ModuleList = layers
        self.pooling = pooling_mode(self.path)
        self.normalize = normalises(self.path)
        self.model.eval()
        self.model.requires_grad_(False)
        self.id = f"{dir_fingerprint(self.path)}-{self.pooling}-t{self.max_seq_length}"

    def sentence(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Last-layer token states -> the vector sentence-transformers would return."""
        return pool(states, mask, self.pooling, self.normalize)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden(self) -> int:
        return int(self.model.config.hidden_size)

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask, [B, T] each (padded to the longest text, at most max_seq_length)."""
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_seq_length,
                             return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"]

    @torch.no_grad()
    def all_states(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Hidden states after the embeddings and after every layer: n_layers + 1 tensors [B, T, H]."""
        out = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        return tuple(out.hidden_states)


def extended_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, T] 1/0 -> the additive [B, 1, 1, T] attention mask BERT layers take."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def run_layers(layers: nn.ModuleList, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Run BERT layers on cached hidden states ([B, T, H]) -> [B, T, H]."""
    ext = extended_mask(mask, states.dtype)
    for layer in layers:
        out = layer(states, attention_mask=ext)
        states = out[0] if isinstance(out, tuple) else out
    return states
