"""Fixtures for encoder tests: tiny models built offline in tmp folders, small item tables."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.dataset import Dataset
from fusionrec.encoders.base import Encoder, ItemInput, content_hash
from fusionrec.encoders.text import TextTemplate, prepare_text_items

WORDS = ["the", "a", "red", "blue", "lamp", "mug", "wood", "metal", "desk", "chair", "soft", "hard", "toy", "story"]


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with a word-piece vocab, saved like a Hugging Face model folder.

    sentence-transformers loads a plain HF folder by adding mean pooling, which is the
    "any local Hugging Face model path" case of the text encoder.
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"],
             *list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'")]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    BertModel(cfg).eval().save_pretrained(folder)
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode table (to write a byte-level BPE vocab offline)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    """A randomly initialised tiny CLIPModel + a byte-level CLIP tokenizer (no merges), saved to disk."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny_clip")
    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=24, bos_token_id=len(vocab) - 2,
                         eos_token_id=len(vocab) - 1, pad_token_id=len(vocab) - 1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    CLIPModel(cfg).eval().save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "size": {"shortest_edge": 36}, "crop_size": {"height": 32, "width": 32},
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    }))
    return folder


class CountingTextEncoder(Encoder):
    """A deterministic stand-in model (hash -> vector) that counts what it encodes.

    Used where the test is about the pipeline/store, not about a neural network:
    it makes "the second run does no model work" directly observable.
    """

    name = "counting-text"
    kind = "text"

    def __init__(self, template: str = "{title}. {description}", dim: int = 8, delay: float = 0.0,
                 modality: str | None = None) -> None:
        super().__init__(modality)
        self.template = TextTemplate(template)
        self._dim = dim
        self.delay = delay
        self.encoded: list[str] = []
        self.calls = 0

    def _id_parts(self) -> dict[str, Any]:
        return {"dim": self._dim}

    @property
    def dim(self) -> int:
        return self._dim

    def prepare(self, items: pd.DataFrame, root: Path | None) -> list[ItemInput]:
        return prepare_text_items(self.template, items, root)

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        import time

        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        self.encoded.extend(batch)
        return np.stack([vector_for(t, self._dim) for t in batch])


def vector_for(text: str, dim: int) -> np.ndarray:
    seed = int(content_hash(text)[:8], 16)
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def make_dataset(items: pd.DataFrame, root: Path | None = None, name: str = "tiny") -> Dataset:
    """A Dataset around an item table as given (one dummy interaction per item).

    Built with the constructor, not through validation (Dataset.from_frames), so missing,
    corrupt or odd inputs reach the encoders and their own handling is what is tested.
    """
    inter = pd.DataFrame({"user": [0] * len(items), "item": range(len(items))})
    return Dataset(name, [0], items["item_id"].tolist(), inter, items.reset_index(drop=True), root=root)


@pytest.fixture
def shop_items() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 40
    return pd.DataFrame({
        "item_id": [f"sku{i}" for i in range(n)],
        "title": [f"{rng.choice(WORDS)} {rng.choice(WORDS)} {i}" for i in range(n)],
        "description": [" ".join(rng.choice(WORDS, 6)) for _ in range(n)],
    })


class PixelStatsEncoder(Encoder):
    """A cheap image "model" (per-channel mean/std of the preprocessed crop) for pipeline tests.

    It goes through the real image path handling, Pillow preprocessing and worker pool;
    only the network is replaced, so tests stay fast on a loaded 2-core machine.
    """

    name = "pixel-stats"
    kind = "image"
    parallel_load = True

    def __init__(self, modality: str | None = None) -> None:
        from fusionrec.encoders.image import ImagePreprocessor

        super().__init__(modality)
        self.preprocess = ImagePreprocessor(resize=40, crop=32)
        self.calls = 0

    def _id_parts(self) -> dict[str, Any]:
        return self.preprocess.id_parts()

    @property
    def dim(self) -> int:
        return 6

    def prepare(self, items: pd.DataFrame, root: Path | None) -> list[ItemInput]:
        from fusionrec.encoders.image import prepare_image_items

        return prepare_image_items(items, root, None)

    def load(self, payload: str) -> np.ndarray:
        return self.preprocess(payload)

    def encode(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        self.calls += 1
        x = np.stack(list(batch))
        return np.concatenate([x.mean(axis=(2, 3)), x.std(axis=(2, 3))], axis=1).astype(np.float32)


def snapshot(module) -> dict:
    """A copy of every tensor of ``module``'s state dict, to compare after a training step."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict, after: dict) -> set[str]:
    """Names of the state-dict tensors that differ between two snapshots."""
    import torch

    return {k for k in before if not torch.equal(before[k], after[k])}
