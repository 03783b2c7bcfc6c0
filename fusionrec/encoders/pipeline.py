"""``encode_dataset``: run encoders over a Dataset's items, through the feature store.

For each encoder:

1. ``prepare`` every item (cheap): content key or the reason there is no content;
2. look the keys up in the store; cached vectors and cached failures cost nothing
   (a fully cached run never loads the model);
3. the rest are decoded (images/audio in a ``torch.utils.data.DataLoader`` with
   worker processes, so decoding overlaps with the model on the other core) and
   encoded in batches of ``batch_size``; every ``flush_every`` new vectors are
   committed to the store, so a killed run keeps what it finished;
4. the result is a :class:`FeatureModality` with an explicit mask (False = no
   usable content: never mean-imputed) attached to the dataset, plus a
   :class:`ModalityReport` listing every problem item (id, file, reason).
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from fusionrec.allocator import keep_freed_memory
from fusionrec.data.dataset import Dataset, FeatureModality
from fusionrec.encoders.base import (
    Encoder,
    EncoderInfo,
    ItemInput,
    ItemIssue,
    ItemProblem,
)
from fusionrec.encoders.store import FeatureStore


@dataclass
class ModalityReport:
    """What happened to one modality in one encode run."""

    modality: str
    encoder: str
    encoder_id: str
    n_items: int
    n_present: int = 0
    n_cached: int = 0
    n_encoded: int = 0
    seconds: float = 0.0
    encode_seconds: float = 0.0
    store_path: str | None = None
    issues: list[ItemIssue] = field(default_factory=list)

    @property
    def n_missing(self) -> int:
        return self.n_items - self.n_present

    @property
    def items_per_second(self) -> float:
        """Throughput of the items that needed model work (0 when everything was cached)."""
        return self.n_encoded / self.encode_seconds if self.encode_seconds > 0 else 0.0

    def reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for issue in self.issues:
            key = issue.reason.split(":")[0].split(" (")[0]
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def as_dict(self) -> dict[str, Any]:
        return {
            "modality": self.modality, "encoder": self.encoder, "encoder_id": self.encoder_id,
            "n_items": self.n_items, "n_present": self.n_present, "n_missing": self.n_missing,
            "n_cached": self.n_cached, "n_encoded": self.n_encoded, "seconds": round(self.seconds, 3),
            "encode_seconds": round(self.encode_seconds, 3), "items_per_second": round(self.items_per_second, 2),
            "store_path": self.store_path, "issue_reasons": self.reasons(),
        }


@dataclass
class EncodeReport:
    """Per-modality reports of one :func:`encode_dataset` call."""

    dataset: str
    modalities: dict[str, ModalityReport] = field(default_factory=dict)
    features: dict[str, FeatureModality] = field(default_factory=dict)

    @property
    def issues(self) -> list[ItemIssue]:
        return [i for rep in self.modalities.values() for i in rep.issues]

    def issues_frame(self) -> pd.DataFrame:
        return pd.DataFrame([i.as_dict() for i in self.issues], columns=["item_id", "modality", "file", "reason"])

    def summary(self) -> str:
        lines = [(f"{'modality':<12} {'encoder':<20} {'items':>7} {'present':>8} {'cached':>7} "
                 f"{'encoded':>8} {'items/s':>8} {'seconds':>8}")]
        for rep in self.modalities.values():
            lines.append(
                f"{rep.modality:<12} {rep.encoder:<20} {rep.n_items:>7} {rep.n_present:>8} {rep.n_cached:>7} "
                f"{rep.n_encoded:>8} {rep.items_per_second:>8.1f} {rep.seconds:>8.1f}"
            )
            for reason, count in rep.reasons().items():
                lines.append(f"    {count} item(s) without {rep.modality}: {reason}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "modalities": {k: v.as_dict() for k, v in self.modalities.items()}}


class _MemoryStore:
    """Same interface as :class:`FeatureStore` for runs without a cache folder."""

    def __init__(self, info: EncoderInfo) -> None:
        self.info = info
        self.dim: int | None = None
        self.directory = None
        self._vectors: dict[str, np.ndarray] = {}
        self.failures: dict[str, str] = {}
        self.pending = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def has(self, key: str) -> bool:
        return key in self._vectors

    def lookup(self, keys: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
        found = np.array([k is not None and k in self._vectors for k in keys], dtype=bool)
        out = np.zeros((len(keys), self.dim or 0), dtype=np.float32)
        for pos in np.flatnonzero(found):
            out[pos] = self._vectors[keys[pos]]
        return out, found

    def failure(self, key: str) -> str | None:
        return self.failures.get(key)

    def add(self, keys: Sequence[str], features: np.ndarray) -> None:
        if self.dim is None:
            self.dim = int(features.shape[1])
        for key, row in zip(keys, features):
            self._vectors[key] = np.asarray(row, dtype=np.float32)

    def add_failure(self, key: str, reason: str) -> None:
        self.failures[key] = reason

    def set_items(self, item_ids: Any, keys: Any) -> None:
        return None

    def flush(self) -> None:
        return None

    def compact(self, max_shards: int = 16) -> bool:
        return False


class _LoadDataset:
    """Map-style dataset for the DataLoader: index -> (index, loaded input or None, problem)."""

    def __init__(self, encoder: Encoder, payloads: Sequence[Any]) -> None:
        self.encoder = encoder
        self.payloads = payloads

    def __len__(self) -> int:
        return len(self.payloads)

    def __getitem__(self, index: int) -> tuple[int, Any, str | None]:
        try:
            return index, self.encoder.load(self.payloads[index]), None
        except ItemProblem as problem:
            return index, None, problem.reason
        except Exception as err:  # noqa: BLE001 -- a decoder bug must cost one item, not the whole run
            return index, None, f"could not load: {type(err).__name__}: {err}"


class _Collate:
    """Runs in the worker: stack the good inputs (so the main process only runs the model)."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    def __call__(self, rows: list[tuple[int, Any, str | None]]):
        ok = [(i, x) for i, x, p in rows if p is None]
        bad = [(i, p) for i, _x, p in rows if p is not None]
        batch = self.encoder.collate([x for _i, x in ok]) if ok else None
        return [i for i, _x in ok], batch, bad


def _batches(
    encoder: Encoder, payloads: Sequence[Any], batch_size: int, num_workers: int
) -> Iterator[tuple[list[int], Any, list[tuple[int, str]]]]:
    """Yield ``(indices of loaded inputs, collated batch, [(index, problem)])``."""
    dataset = _LoadDataset(encoder, payloads)
    collate = _Collate(encoder)
    if num_workers > 0 and encoder.parallel_load and len(payloads) > batch_size:
        from torch.utils.data import DataLoader

        loader = DataLoader(
            dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
            collate_fn=collate, prefetch_factor=4, persistent_workers=False,
        )
        yield from loader
        return
    for start in range(0, len(payloads), batch_size):
        yield collate([dataset[i] for i in range(start, min(start + batch_size, len(payloads)))])


def encode_items(
    encoder: Encoder,
    items: pd.DataFrame,
    root: str | Path | None = None,
    item_ids: Sequence[Any] | None = None,
    store_dir: str | Path | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    flush_every: int = 1024,
    progress: bool = True,
    ray_workers: int = 0,
    ray_address: str | None = None,
) -> tuple[FeatureModality, ModalityReport]:
    """Encode one modality of an item table; see the module docstring for the steps.

    ``ray_workers`` > 0 runs the model work on that many Ray actors
    (:mod:`fusionrec.encoders.ray_encode`; ``ray_address`` None = a local Ray).
    """
    started = time.perf_counter()
    keep_freed_memory()  # the encoders' activations are re-allocated per batch: fusionrec/allocator.py
    root = Path(root) if root is not None else None
    item_ids = list(item_ids) if item_ids is not None else list(range(len(items)))
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_workers is None:
        # One decoding worker overlaps decoding with the model, which uses all cores.
        num_workers = 1 if encoder.parallel_load else 0

    encoder.fit(items, root)
    inputs: list[ItemInput] = encoder.prepare(items, root)
    if len(inputs) != len(items):
        raise RuntimeError(f"encoder {encoder.name} prepared {len(inputs)} inputs for {len(items)} items")
    info = encoder.info()
    store = FeatureStore.open(store_dir, info) if store_dir is not None else _MemoryStore(info)
    report = ModalityReport(encoder.modality, encoder.name, info.encoder_id, len(items))
    report.store_path = str(store.directory) if store.directory is not None else None
    keys = [it.key for it in inputs]

    with store:
        work = _work_list(encoder, inputs, store)
        report.n_cached = sum(1 for k in keys if k is not None and store.has(k))
        if work and progress and len(work) < len(items):
            from fusionrec import output

            # the bar counts distinct uncached inputs, not items: say why it is shorter
            output.info(f"encode {encoder.modality} ({encoder.name}): {len(items)} items, {report.n_cached} cached, "
                        f"{len(work)} distinct input(s) to encode")
        if work and ray_workers > 0:
            from fusionrec.encoders.ray_encode import run_work_ray

            report.n_encoded, report.encode_seconds = run_work_ray(
                encoder, work, store, batch_size, flush_every, progress, ray_address, ray_workers)
        elif work:
            report.n_encoded, report.encode_seconds = _run_work(
                encoder, work, store, batch_size, num_workers, flush_every, progress)
        store.set_items(item_ids, keys)
        store.flush()
        store.compact()
        feats, found = _stored_vectors(encoder, inputs, keys, item_ids, store, report)
    report.n_present = int(found.sum())
    report.seconds = time.perf_counter() - started
    modality = FeatureModality(encoder.modality, encoder.kind, feats, found, source=f"{encoder.name} ({info.encoder_id})")
    return modality, report


def _work_list(encoder: Encoder, inputs: list[ItemInput], store: Any) -> list[ItemInput]:
    """Unique content keys neither cached nor known to fail, similar lengths together."""
    todo: dict[str, ItemInput] = {}
    for it in inputs:
        if it.key is not None and not store.has(it.key) and store.failure(it.key) is None:
            todo.setdefault(it.key, it)
    work = list(todo.values())
    sort_key = getattr(encoder, "sort_key", None)
    if sort_key is not None:
        # Similar lengths in a batch -> less padding (what sentence-transformers does per call).
        work.sort(key=sort_key)
    return work


def _stored_vectors(encoder: Encoder, inputs: list[ItemInput], keys: list[str | None], item_ids: list[Any],
                    store: Any, report: ModalityReport) -> tuple[np.ndarray, np.ndarray]:
    """Every item's vector from the store by its content ``keys`` (zeros where absent) and the presence
    mask; an issue in ``report`` for each item without one, with the reason."""
    dim = store.dim if store.dim is not None else encoder.dim
    feats, found = store.lookup(keys)
    if feats.shape[1] != dim:
        feats = np.zeros((len(keys), dim), dtype=np.float32)
    for pos, it in enumerate(inputs):
        if found[pos]:
            continue
        reason = it.problem if it.key is None else (store.failure(it.key) or "not encoded")
        report.issues.append(ItemIssue(_plain(item_ids[pos]), encoder.modality, it.file, reason))
    return feats, found


def _run_work(
    encoder: Encoder, work: list[ItemInput], store: Any, batch_size: int, num_workers: int,
    flush_every: int, progress: bool,
) -> tuple[int, float]:
    """Decode + encode the work list into the store; returns (vectors computed, seconds)."""
    from fusionrec import output

    started = time.perf_counter()
    n_done = 0
    # a bar on a terminal, plain lines in logs and pipes, nothing with -q (fusionrec.output)
    bar = output.progress_bar(len(work), f"encode {encoder.modality} ({encoder.name})", "input", progress)
    try:
        for indices, batch, problems in _batches(encoder, [w.payload for w in work], batch_size, num_workers):
            for index, reason in problems:
                store.add_failure(work[index].key, reason)
            if indices:
                feats = encoder.encode(batch)
                store.add([work[i].key for i in indices], feats)
                n_done += len(indices)
            if store.pending >= flush_every:
                store.flush()
            bar.update(len(indices) + len(problems))
    finally:
        bar.close()
    return n_done, time.perf_counter() - started


def encode_dataset(
    dataset: Dataset,
    encoders: Sequence[Encoder | str],
    store_dir: str | Path | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    flush_every: int = 1024,
    progress: bool = True,
    attach: bool = True,
    ray_workers: int = 0,
    ray_address: str | None = None,
) -> EncodeReport:
    """Encode every item of ``dataset`` with each encoder; attach the modalities to the dataset.

    ``encoders``: :class:`Encoder` objects or registry names (``"minilm"``,
    ``"efficientnet-lite0"``, ...). ``store_dir``: the feature cache (None = no cache).
    ``ray_workers`` > 0: the model work runs on Ray actors (``ray_address``: a
    cluster; None starts a local Ray with that many CPUs).
    Returns an :class:`EncodeReport` (counts, throughput, per-item issues).
    """
    from fusionrec.encoders.registry import build_encoder

    report = EncodeReport(dataset.name)
    for enc in encoders:
        encoder = build_encoder(enc) if isinstance(enc, str) else enc
        if encoder.modality in report.modalities:
            raise ValueError(
                f"two encoders produce modality {encoder.modality!r}; give one a different modality= name"
            )
        modality, rep = encode_items(
            encoder, dataset.items, dataset.root, dataset.item_ids, store_dir,
            batch_size=batch_size, num_workers=num_workers, flush_every=flush_every, progress=progress,
            ray_workers=ray_workers, ray_address=ray_address,
        )
        if attach:
            dataset.add_modality(modality)
            _remember(dataset, encoder, modality, rep)
        report.modalities[encoder.modality] = rep
        report.features[encoder.modality] = modality
    return report


def _remember(dataset: Dataset, encoder: Encoder, modality: FeatureModality, rep: ModalityReport) -> None:
    """Record how the modality was made, for the run record and for serving's encoders."""
    from fusionrec.encoders.ensure import _jsonable, modality_record, remember_record

    spec = encoder.spec or {"name": encoder.name, "params": {}}
    remember_record(dataset, modality.name, modality_record(
        modality, encoder=spec["name"], encoder_id=rep.encoder_id, params=_jsonable(spec["params"]),
        n_cached=rep.n_cached, n_encoded=rep.n_encoded, n_missing=rep.n_missing,
        missing_reasons=rep.reasons(), store=rep.store_path,
    ))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
