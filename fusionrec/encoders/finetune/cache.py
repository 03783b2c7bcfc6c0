"""On-disk cache of what fine-tuning never recomputes: token ids and the frozen layers' hidden states.

Rows are keyed by the item's *content key* (the hash of the exact text the model
reads, as in the feature store) inside a folder named by the backbone id (model
files fingerprint, pooling, max_seq_length), so an edited text, another model or
another truncation never reads a stale row, and a new item costs one forward pass
of its own. Files (``<cache_dir>/<backbone id>/``):

* ``tokens.pt``   -- token ids and lengths (the tokeniser runs once per text);
* ``pooled.pt``   -- [L+1, H] pooled states after the embeddings and after every
  layer (the side adapter's input; the last one is the frozen sentence vector);
* ``cut<k>.pt``   -- [T, H] float16 token states entering layer ``k`` (the input of
  the trainable top layers in full / lora mode).

Writes go to a temporary file renamed into place, so a reader never sees half a file.
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from fusionrec.encoders.finetune.backbone import Backbone, pool


def default_cache_dir() -> Path:
    """``$FUSIONREC_CACHE/finetune`` (default ``~/.cache/fusionrec/finetune``), next to the feature store."""
    base = os.environ.get("FUSIONREC_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "fusionrec") / "finetune"


def _load(path: Path) -> dict:
    if not path.is_file():
        return {"keys": []}
    return torch.load(path, map_location="cpu", weights_only=True)


def _save(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _pad_cat(parts: Sequence[torch.Tensor], length: int) -> torch.Tensor:
    """Concatenate [N_i, T_i, ...] tensors along rows, zero-padding dim 1 to ``length``."""
    out = []
    for p in parts:
        if p.shape[1] < length:
            pad = p.new_zeros((p.shape[0], length - p.shape[1], *p.shape[2:]))
            p = torch.cat([p, pad], dim=1)
        out.append(p)
    return torch.cat(out, dim=0)


class FrozenStateCache:
    """Token ids and frozen hidden states per content key, for one backbone."""

    def __init__(self, backbone: Backbone, cache_dir: str | Path | None = None, batch_size: int = 64) -> None:
        self.backbone = backbone
        self.folder = Path(cache_dir or default_cache_dir()).expanduser() / backbone.id
        self.batch_size = int(batch_size)
        self.computed = 0  # rows computed by the last call (0 = everything came from disk)

    # ------------------------------------------------------------------ tokens
    def tokens(self, keys: Sequence[str], texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """[N, T] token ids and [N] lengths of ``texts`` (read from the cache, tokenising only new keys)."""
        path = self.folder / "tokens.pt"
        stored = _load(path)
        index = {k: i for i, k in enumerate(stored["keys"])}
        missing = [i for i, k in enumerate(keys) if k not in index]
        if missing:
            ids, mask = self.backbone.tokenize([texts[i] for i in missing])
            new = {"ids": _pad_cat([ids.to(torch.int32)], self.backbone.max_seq_length),
                   "lengths": mask.sum(1).to(torch.int32)}
            stored = _append(path, [keys[i] for i in missing], new)
            index = {k: i for i, k in enumerate(stored["keys"])}
        rows = torch.tensor([index[k] for k in keys], dtype=torch.long)
        return stored["ids"][rows], stored["lengths"][rows]

    # ------------------------------------------------------------------ states
    def states(self, keys: Sequence[str], texts: Sequence[str], cut: int | None) -> dict[str, torch.Tensor]:
        """``pooled`` [N, L+1, H] float32 and, with ``cut``, ``tokens`` [N, T, H] float16 entering layer ``cut``
        plus ``mask`` [N, T]; the frozen backbone runs only for keys not cached yet."""
        pooled_path = self.folder / "pooled.pt"
        cut_path = self.folder / f"cut{cut}.pt" if cut is not None else None
        pooled = _load(pooled_path)
        cuts = _load(cut_path) if cut_path is not None else None
        have = set(pooled["keys"]) & (set(cuts["keys"]) if cuts is not None else set(pooled["keys"]))
        missing = [i for i, k in enumerate(keys) if k not in have]
        self.computed = len(missing)
        if missing:
            new_keys = [keys[i] for i in missing]
            new_pooled, new_cut = self._compute(new_keys, [texts[i] for i in missing], cut)
            pooled = _append(pooled_path, new_keys, new_pooled)
            if cut_path is not None:
                cuts = _append(cut_path, new_keys, new_cut)
        out = {"pooled": pooled["pooled"][self._rows(pooled["keys"], keys)]}
        if cuts is not None:
            rows = self._rows(cuts["keys"], keys)
            out["tokens"], out["mask"] = cuts["states"][rows], cuts["mask"][rows]
        return out

    @staticmethod
    def _rows(stored: Sequence[str], keys: Sequence[str]) -> torch.Tensor:
        index = {k: i for i, k in enumerate(stored)}
        return torch.tensor([index[k] for k in keys], dtype=torch.long)

    def _compute(self, keys: list[str], texts: list[str], cut: int | None) -> tuple[dict, dict]:
        """One frozen pass over new texts: pooled states of every layer and the token states entering ``cut``."""
        ids, lens = self.tokens(keys, texts)
        bb, length = self.backbone, self.backbone.max_seq_length
        new_pooled, new_tokens, new_mask = [], [], []
        order = torch.argsort(lens, descending=True)  # similar lengths together: less padding
        for start in range(0, len(keys), self.batch_size):
            rows = order[start:start + self.batch_size]
            t = int(lens[rows].max())
            b_ids = ids[rows, :t].long()
            b_mask = (torch.arange(t)[None, :] < lens[rows][:, None]).long()
            hs = bb.all_states(b_ids, b_mask)
            # intermediate layers pooled as the model pools; the last one is the sentence vector itself
            layer_pooled = [pool(h, b_mask, bb.pooling) for h in hs[:-1]] + [bb.sentence(hs[-1], b_mask)]
            new_pooled.append((rows, torch.stack(layer_pooled, 1)))
            if cut is not None:
                new_tokens.append((rows, _pad_cat([hs[cut].half()], length)))
                new_mask.append((rows, _pad_cat([b_mask.to(torch.bool)], length)))
        pooled = {"pooled": _unsort(new_pooled, len(keys))}
        cuts = {"states": _unsort(new_tokens, len(keys)), "mask": _unsort(new_mask, len(keys))} if cut is not None else {}
        return pooled, cuts


def _unsort(parts: list[tuple[torch.Tensor, torch.Tensor]], n: int) -> torch.Tensor:
    """Batches computed in length order -> rows in the caller's order."""
    first = parts[0][1]
    out = first.new_zeros((n, *first.shape[1:]))
    for rows, values in parts:
        out[rows] = values
    return out


def _append(path: Path, keys: list[str], new: dict[str, torch.Tensor]) -> dict:
    """Add rows to a cache file and return its full content. Under a lock, the file is read again first,
    so processes filling the same cache at once (two datasets, parallel runs) keep each other's rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stored = _load(path)
        have = set(stored["keys"])
        keep = [i for i, k in enumerate(keys) if k not in have]
        if not keep:
            return stored
        rows = torch.tensor(keep, dtype=torch.long)
        if stored["keys"]:
            merged = {"keys": list(stored["keys"]) + [keys[i] for i in keep],
                      **{k: torch.cat([stored[k], v[rows]]) for k, v in new.items()}}
        else:
            merged = {"keys": [keys[i] for i in keep], **{k: v[rows] for k, v in new.items()}}
        _save(path, merged)
        return merged
