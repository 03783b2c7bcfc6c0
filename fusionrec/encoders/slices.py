"""Run a model over slices of a batch, one slice per thread, each slice single-threaded.

Why not one call with torch's intra-op threads: a network called on a few items at a time
(small activations, see fusionrec/allocator.py) is many short parallel regions, and every
region ends at a barrier where each intra-op thread waits for the others. On a machine with
other work those waits dominate: EfficientNet-Lite0 with 2 intra-op threads at load 10 ran
0.3 images/s on slices of 4 (24 s of spinning user time for 64 images), 1.3 on a whole batch.
Threads that each own whole slices never wait for each other; torch releases the GIL inside
its operators, so they run in parallel. Each slice's result is what a single-threaded call
gives, whatever the thread count.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def checked_slice_size(value: object, setting: str, default: int) -> int:
    """``value`` when it is a whole number >= 1; else a UserError naming ``setting`` (e.g. image.micro_batch)."""
    from fusionrec.errors import UserError

    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        kind = setting.split(".")[0]
        raise UserError(f"{kind} encoder micro_batch must be a whole number >= 1, got {value!r}",
                        fix=f"e.g. fusionrec encode --param {setting}={default} (the default)")
    return value


def map_slices(fn: Callable[[Any], T], batch: Sequence[Any], step: int, threads: int | None = None) -> list[T]:
    """``[fn(batch[0:step]), fn(batch[step:2*step]), ...]`` in order, on ``threads`` threads.

    ``threads`` defaults to torch's intra-op thread count, which is set to 1 for the call
    (and restored) so the threads do not also split each operator. ``fn`` runs in worker
    threads: thread-local torch state such as ``inference_mode`` must be entered inside it.
    """
    import torch

    slices = [batch[s:s + step] for s in range(0, len(batch), step)]
    threads = torch.get_num_threads() if threads is None else threads
    if threads <= 1 or len(slices) <= 1:
        return [fn(s) for s in slices]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=min(threads, len(slices)), thread_name_prefix="fusionrec-slice") as pool:
            return list(pool.map(fn, slices))
    finally:
        torch.set_num_threads(before)
