"""Where a run computes: ``train.device`` (``auto | cpu | cuda | cuda:N | mps``) resolved once.

The trainer moves the model there before the first step (:meth:`RecModel._apply` carries the
tensors a model keeps as plain attributes -- graphs, history matrices, lookup tables -- along with
its parameters), moves each sampled batch there, and the evaluator scores there and brings only
the top-K back to the host. Samplers draw on the host with numpy, so a seeded run draws the same
batches on every device. The encoders (text, image, CLIP) of ``fusionrec encode`` / ``train`` run there too.

* ``auto``: the first CUDA device when ``torch.cuda.is_available()``, else the CPU; under torchrun
  each rank takes the GPU numbered by its ``LOCAL_RANK``;
* ``cpu``: the CPU even on a GPU machine;
* ``cuda`` / ``cuda:N``: a GPU; when none is visible this is a UserError (not a silent CPU run);
* ``mps``: Apple silicon.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

import torch

from fusionrec.config import DEVICE_CHOICES, check_device_spec
from fusionrec.errors import UserError

_FIX = ("run on the CPU: --device cpu (or --set train.device=cpu; from Python device=\"cpu\"), or leave it at "
        "auto (a GPU when there is one, else the CPU)")


def resolve_device(spec: str | torch.device | None = "auto", where: str = "train.device",
                   strict: bool = True) -> torch.device:
    """The :class:`torch.device` a run with ``train.device = spec`` computes on (see the module docstring).

    Raises a UserError when ``spec`` is not a device name, or names a GPU this process cannot see;
    with ``strict=False`` a device this machine lacks is the CPU instead (scoring a saved model that
    was trained on a GPU: its config says cuda, this machine may have none).
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    try:
        text = check_device_spec(spec)
    except ValueError as err:
        raise UserError(str(err), where, f"choose one of {', '.join(DEVICE_CHOICES)}") from None
    if not strict:
        try:
            return resolve_device(text, where)
        except UserError:
            return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "auto":
        return local_cuda_device() if torch.cuda.is_available() else torch.device("cpu")
    if text == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UserError(f"{where} is mps but no Apple MPS device is available in this process", where, _FIX)
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise UserError(f"{where} is {text} but no CUDA device is visible to this process "
                        f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'})", where, _FIX)
    if text == "cuda":
        return local_cuda_device()
    index = int(text.split(":")[1])
    if index >= torch.cuda.device_count():
        raise UserError(f"{where} is {text} but only {torch.cuda.device_count()} CUDA device(s) are visible",
                        where, f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}, or train.device=auto")
    return torch.device(text)


def local_cuda_device() -> torch.device:
    """``cuda:LOCAL_RANK`` under torchrun (one GPU per rank on a machine), ``cuda:0`` otherwise."""
    rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    count = max(torch.cuda.device_count(), 1)
    return torch.device("cuda", rank % count)


def model_device(module: Any) -> torch.device:
    """The device of a module's first parameter or buffer (the CPU for a module without any)."""
    if isinstance(module, torch.nn.Module):
        for t in module.parameters():
            return t.device
        for t in module.buffers():
            return t.device
    return torch.device("cpu")


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """A sampled batch with its tensors on ``device`` (``non_blocking`` copies on a GPU);
    the batch itself on the CPU, where the samplers made it."""
    if device.type == "cpu":
        return batch if isinstance(batch, dict) else dict(batch)
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


def compute_on(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """While a model computes on ``device``: torch's default device for tensors made without ``device=``
    (``torch.zeros``, ``torch.rand``, ``torch.arange`` in a model's loss or scoring), so they are made
    where the model's weights are; nothing on the CPU (no overhead, the same random streams as ever)."""
    return device if device.type != "cpu" else contextlib.nullcontext()


def describe(device: torch.device) -> str:
    """One line for logs and benchmarks: ``cuda:0 (NVIDIA H100, CUDA 12.4)`` or ``cpu (8 threads)``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"{device} ({torch.cuda.get_device_name(index)}, CUDA {torch.version.cuda})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


__all__ = ["DEVICE_CHOICES", "check_device_spec", "compute_on", "describe", "local_cuda_device", "model_device", "resolve_device", "to_device"]
