"""Encoding on a Ray cluster: the encoders run as Ray Data ``map_batches`` actors.

The single-process path (:func:`fusionrec.encoders.pipeline._run_work`) stays the
default; ``fusionrec encode --ray [ADDRESS]`` (or ``encode_dataset(..., ray=...)``)
sends the same work list here instead. What changes is only who computes:

* the driver prepares the work exactly as before (content keys, cache look-up,
  sort by length) and cuts it into the same batches the single process would
  make, so every model call sees the same inputs and the vectors are the same;
* each batch is one row of a Ray Dataset; ``map_batches`` with a pool of actors
  (``workers`` of them, one CPU each) decodes and encodes it. Every actor holds
  one copy of the fitted encoder (its model loads once per actor, lazily);
* the driver streams the results back and writes them into the feature store,
  under the store's writer lock, flushing every ``flush_every`` vectors. The
  store's lock and atomic manifest make concurrent writers safe: two encode runs
  (Ray or not) on one cache serialise their commits and never lose a vector.

Ray is an optional extra (``pip install 'fusionrec[dist]'``); without an address
a local Ray instance is started with ``workers`` CPUs and shut down afterwards.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from fusionrec.encoders.base import Encoder, ItemInput
from fusionrec.errors import UserError


def require_ray() -> Any:
    """The ``ray`` module, or a UserError that says how to install it."""
    try:
        import ray
        import ray.data  # Ray Data is a separate extra of ray
    except ImportError as err:
        raise UserError(
            f"--ray needs Ray Data, which is not installed ({err})",
            fix="pip install 'fusionrec[dist]'  (or: pip install 'ray[data]')",
        ) from err
    return ray


class _EncodeBatches:
    """Ray actor: one fitted encoder; a row is one batch of payload positions."""

    def __init__(self, encoder: Encoder, payloads: Sequence[Any], threads: int) -> None:
        import ray
        import torch

        from fusionrec.allocator import keep_freed_memory

        keep_freed_memory()  # an actor is its own process: same setting as the driver's
        torch.set_num_threads(max(1, threads))
        self.encoder = encoder
        # the payload list is shared through the object store: one copy per node, not per batch
        self.payloads = ray.get(payloads) if isinstance(payloads, ray.ObjectRef) else payloads

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from fusionrec.encoders.pipeline import _Collate, _LoadDataset

        loader = _LoadDataset(self.encoder, self.payloads)
        collate = _Collate(self.encoder)
        out_index, out_vectors, bad_index, bad_reason = [], [], [], []
        for positions in rows["positions"]:
            indices, batch, problems = collate([loader[int(i)] for i in positions])
            if indices:
                out_index.append(np.asarray(indices, dtype=np.int64))
                out_vectors.append(np.asarray(self.encoder.encode(batch), dtype=np.float32))
            for index, reason in problems:
                bad_index.append(index)
                bad_reason.append(reason)
        # one result row: vectors travel as raw bytes so batches of any size and dim fit one schema
        vectors = np.concatenate(out_vectors) if out_vectors else np.zeros((0, 0), np.float32)
        return {
            "index": [np.concatenate(out_index) if out_index else np.zeros(0, np.int64)],
            "vectors": [vectors.tobytes()],
            "dim": np.asarray([vectors.shape[1]], dtype=np.int64),
            "bad_index": [np.asarray(bad_index, dtype=np.int64)],
            "bad_reason": [np.asarray(bad_reason, dtype=object)],
        }


def run_work_ray(
    encoder: Encoder, work: list[ItemInput], store: Any, batch_size: int, flush_every: int, progress: bool,
    address: str | None = None, workers: int = 2,
) -> tuple[int, float]:
    """Encode ``work`` on Ray actors into ``store``; returns (vectors computed, seconds)."""
    from fusionrec import output

    ray = require_ray()
    if workers < 1:
        raise UserError(f"--ray-workers {workers} must be at least 1", fix="e.g. --ray-workers 2")
    started = time.perf_counter()
    own_instance = not ray.is_initialized()
    if own_instance:
        _init_ray(ray, address, workers)
    else:
        quiet_ray_data(ray)
    try:
        payloads = ray.put([w.payload for w in work])
        batches = [{"positions": np.arange(s, min(s + batch_size, len(work)), dtype=np.int64)}
                   for s in range(0, len(work), batch_size)]
        dataset = ray.data.from_items(batches, override_num_blocks=max(1, min(len(batches), 4 * workers)))
        results = dataset.map_batches(
            _EncodeBatches, fn_constructor_args=(encoder, payloads, 1), batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
        )
        n_done = 0
        bar = output.progress_bar(len(work), f"encode {encoder.modality} ({encoder.name}, ray x{workers})",
                                  "input", progress)
        try:
            for row in results.iter_rows():
                n_done += _store_result(row, work, store)
                if store.pending >= flush_every:
                    store.flush()
                bar.update(len(row["index"]) + len(row["bad_index"]))
        finally:
            bar.close()
    finally:
        if own_instance:
            ray.shutdown()
    return n_done, time.perf_counter() - started


def _store_result(row: dict[str, Any], work: list[ItemInput], store: Any) -> int:
    index = np.asarray(row["index"], dtype=np.int64)
    for i, reason in zip(np.asarray(row["bad_index"], dtype=np.int64), row["bad_reason"]):
        store.add_failure(work[int(i)].key, str(reason))
    if len(index) == 0:
        return 0
    vectors = np.frombuffer(row["vectors"], dtype=np.float32).reshape(len(index), int(row["dim"]))
    store.add([work[int(i)].key for i in index], vectors)
    return len(index)


def _init_ray(ray: Any, address: str | None, workers: int) -> None:
    import logging

    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False, configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise UserError(
            f"could not start or reach Ray at {address or 'a new local instance'} ({err})",
            fix="give the head node's address (ray://HOST:10001 or HOST:6379), or omit it for a local Ray",
        ) from err
    quiet_ray_data(ray)


def quiet_ray_data(ray: Any) -> None:
    """fusionrec prints its own progress: Ray Data's bars and per-10s status lines go."""
    import logging

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    for name in ("ray.data", "ray.data._internal.execution.streaming_executor"):
        logging.getLogger(name).setLevel(logging.WARNING)
