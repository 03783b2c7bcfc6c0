"""Data-parallel training with PyTorch DDP: several processes, one model, the same result.

Started by ``torchrun --nproc-per-node N -m fusionrec train ...`` (or ``fusionrec train
--nproc N``, which runs torchrun for you). Each process (rank) builds the same data and
model from the same seeds; then, per training step:

* every rank draws the *same* seeded batch and keeps its own contiguous slice of it
  (:meth:`DistContext.shard`), so the ranks together see each batch exactly once;
* the model runs under :class:`torch.nn.parallel.DistributedDataParallel`, which
  averages the gradients over the ranks during ``backward``: with equal slices that
  is the gradient of the whole batch, so N processes follow the single-process run up
  to floating-point order (the test checks the metrics agree);
* models whose loss compares a row with the other rows of its batch (in-batch
  negatives) gather the other ranks' item ids with :func:`gather_ids`, so the
  negatives of a distributed step are those of the whole batch;
* validation, checkpoints, callbacks, the test split and every file are rank 0's; the
  decision to keep a checkpoint or stop early is broadcast so the ranks stay in step;
  on resume rank 0 reads the checkpoint and sends it to the others.

The backend is gloo on the CPU and nccl when the run's ``train.device`` is a GPU; then each
rank computes on the GPU numbered by its ``LOCAL_RANK`` (``torchrun --nproc-per-node`` = the
GPUs of the machine). Without the torchrun environment (``WORLD_SIZE`` unset or 1) nothing
here is active.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class DistContext:
    """This process's place in a distributed run."""

    rank: int
    world_size: int
    backend: str
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))   # nccl: cuda:LOCAL_RANK

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """This rank's contiguous slice of every tensor that has the batch's row count.

        A batch with fewer rows than ranks is used whole by every rank (the averaged
        gradient is then that batch's gradient), so no rank ever has an empty step.
        """
        rows = len(next(iter(batch.values())))
        if rows < self.world_size:
            return batch
        bounds = np.linspace(0, rows, self.world_size + 1).round().astype(int)
        lo, hi = int(bounds[self.rank]), int(bounds[self.rank + 1])
        return {k: (v[lo:hi] if torch.is_tensor(v) and v.dim() > 0 and len(v) == rows else v)
                for k, v in batch.items()}

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (picklable objects: decisions, state dicts)."""
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the ranks."""
        import torch.distributed as dist

        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)   # nccl: on the GPU
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()


_CONTEXT: DistContext | None = None


def init_from_env(device: torch.device | None = None) -> DistContext | None:
    """Join the process group torchrun describes (``RANK``/``WORLD_SIZE``/``MASTER_ADDR``); None when alone.

    ``device``: the run's resolved ``train.device`` (None: a GPU when CUDA is available). On a GPU
    the backend is nccl and this rank takes ``cuda:LOCAL_RANK``; on the CPU, gloo."""
    global _CONTEXT
    if _CONTEXT is not None:
        return _CONTEXT
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    import torch.distributed as dist

    on_gpu = device.type == "cuda" if device is not None else torch.cuda.is_available()
    backend = "nccl" if on_gpu else "gloo"
    rank_device = torch.device("cpu")
    if on_gpu:
        from fusionrec.train.device import local_cuda_device

        rank_device = local_cuda_device()
        torch.cuda.set_device(rank_device)   # nccl collectives and object broadcasts use the current GPU
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    _CONTEXT = DistContext(dist.get_rank(), dist.get_world_size(), backend, rank_device)
    # the ranks share the machine's cores instead of each taking all of them
    cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, cores // _CONTEXT.world_size))
    return _CONTEXT


def current() -> DistContext | None:
    """The context of this process once :func:`init_from_env` joined a group, else None."""
    return _CONTEXT


def is_main() -> bool:
    """True on rank 0 and in any single-process run."""
    return _CONTEXT is None or _CONTEXT.is_main


def shutdown(failed: bool = False) -> None:
    """Leave the process group (end of a distributed command).

    ``failed``: this rank is leaving on an error, so it must not wait for the others (they may be
    inside a collective that will never complete; torchrun stops them).
    """
    global _CONTEXT
    if _CONTEXT is not None:
        import gc

        import torch.distributed as dist

        if dist.is_initialized() and not failed:
            # every rank waits here until all are done (rank 0 tests and writes after training);
            # then what still holds the group (a DDP reducer in a reference cycle) is freed
            # before the group goes: a gloo group torn down under a peer's live work aborts
            dist.barrier()
            gc.collect()
        if dist.is_initialized():
            dist.destroy_process_group()
        _CONTEXT = None


def gather_ids(ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(ids of every rank concatenated, where this rank's ids start)``; ``(ids, 0)`` in one process.

    For in-batch negatives over indices into a table every rank holds (item ids): no
    gradient travels with the ids, so a plain all_gather is enough.
    """
    ctx = _CONTEXT
    if ctx is None:
        return ids, 0
    import torch.distributed as dist

    sizes = [torch.zeros(1, dtype=torch.long, device=ids.device) for _ in range(ctx.world_size)]
    dist.all_gather(sizes, torch.tensor([ids.shape[0]], dtype=torch.long, device=ids.device))
    counts = [int(s.item()) for s in sizes]
    longest = max(counts)
    padded = ids if len(ids) == longest else torch.cat([ids, ids.new_zeros(longest - len(ids), *ids.shape[1:])])
    parts = [torch.empty_like(padded) for _ in range(ctx.world_size)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:n] for p, n in zip(parts, counts)]), sum(counts[: ctx.rank])


class LossModule(nn.Module):
    """``forward(batch) = model.calculate_loss(batch)``: what DDP wraps (it syncs gradients in forward/backward)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.calculate_loss(batch)


def wrap(model: nn.Module, ctx: DistContext) -> nn.Module:
    """The model's loss under DistributedDataParallel (parameters broadcast from rank 0)."""
    from torch.nn.parallel import DistributedDataParallel

    # static graph: the set of parameters a loss uses is the same every step (some models leave a
    # head or a branch out), so DDP learns it once instead of searching the graph at every step
    on_gpu = ctx.device.type == "cuda"
    return DistributedDataParallel(LossModule(model), static_graph=True,
                                   device_ids=[ctx.device.index] if on_gpu else None,
                                   output_device=ctx.device.index if on_gpu else None)


def launch_command(nproc: int, argv: list[str]) -> list[str]:
    """The torchrun command line that reruns ``fusionrec <argv>`` with ``nproc`` processes on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={int(nproc)}",
            "-m", "fusionrec", *argv]


def strip_nproc(argv: list[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N`` (the relaunched ranks must not relaunch)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        out.append(arg)
    return out
