"""On-disk feature cache: one folder per encoder id, vectors keyed by item content hash.

Layout of ``<store_dir>/<encoder name>-<hash of encoder id>/``::

    manifest.json        encoder facts, dimension, shard list (+ the content keys of
                         every shard row), cached failures, the last run's item ids + keys
    shard-000001.npy     float32 [rows, dim]; row r belongs to manifest shards[i].keys[r]
    shard-000002.npy     ...
    .lock                flock'ed by a writer so two encode runs never interleave

Crash safety: every file is written to a temporary name, fsync'ed and moved into
place with ``os.replace`` (atomic on POSIX), and the manifest is replaced *last*.
So a run killed at any instant leaves either the old manifest (new shard files
are then unreferenced orphans, removed by the next writer) or the new one, whose
shards are all complete. Vectors computed before the kill stay cached, because
the encode pipeline flushes a shard every ``flush_every`` items.

Keys are content hashes (see :func:`fusionrec.encoders.base.content_hash`), so
identical content is encoded once and an item whose text or file changed gets a
new key -- re-running ``encode`` computes exactly the new or changed items.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Self

import numpy as np

from fusionrec.encoders.base import EncoderInfo
from fusionrec.errors import UserError

MANIFEST = "manifest.json"
STORE_FORMAT = 1
_SHARD_RE = re.compile(r"^shard-(\d{6,})\.npy$")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` with the same temp-file + fsync + replace protocol."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # The rename itself must reach the disk too, or a power cut could lose it.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def store_folder_name(info: EncoderInfo) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", info.name)
    digest = info.encoder_id.rsplit(":", 1)[-1][:16]
    return f"{slug}-{digest}"


class FeatureStore:
    """Cached vectors of one encoder. Open for reading anytime; :meth:`writer` to add vectors.

    >>> store = FeatureStore.open(store_dir, encoder.info())
    >>> feats, found = store.lookup(keys)
    """

    def __init__(self, directory: Path, info: EncoderInfo | None) -> None:
        self.directory = Path(directory)
        self.info = info
        self.dim: int | None = None
        self.shards: list[dict[str, Any]] = []
        self.failures: dict[str, str] = {}
        self.items: dict[str, list] = {"ids": [], "keys": []}
        self._index: dict[str, tuple[int, int]] = {}
        self._arrays: dict[int, np.ndarray] = {}
        self._pending_keys: list[str] = []
        self._pending_rows: list[np.ndarray] = []
        self._lock_fh = None
        self._next_shard = 1
        self.orphans_removed = 0
        self._read_manifest()

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, store_dir: str | Path, info: EncoderInfo) -> FeatureStore:
        """The store of ``info.encoder_id`` under ``store_dir`` (created empty if absent)."""
        directory = Path(store_dir).expanduser() / store_folder_name(info)
        return cls(directory, info)

    @classmethod
    def open_existing(cls, directory: str | Path) -> FeatureStore:
        """Open a store folder without knowing its encoder (e.g. to inspect a cache)."""
        directory = Path(directory)
        if not (directory / MANIFEST).is_file():
            raise UserError(
                f"no feature store manifest in {directory}",
                where=str(directory / MANIFEST),
                fix="point at a folder written by `fusionrec encode` (one per encoder under --cache)",
            )
        return cls(directory, None)

    def _read_manifest(self) -> None:
        path = self.directory / MANIFEST
        if not path.is_file():
            return
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            # Only reachable if someone edited the file by hand: our writes are atomic.
            raise UserError(
                f"feature store manifest is unreadable ({err})",
                where=str(path),
                fix=f"delete the folder {self.directory} to rebuild this encoder's cache",
            ) from err
        if manifest.get("format") != STORE_FORMAT:
            raise UserError(
                f"feature store format {manifest.get('format')!r} is not {STORE_FORMAT}",
                where=str(path), fix=f"delete {self.directory} to rebuild the cache",
            )
        stored_id = manifest.get("encoder", {}).get("encoder_id")
        if self.info is not None and stored_id != self.info.encoder_id:
            raise UserError(
                f"store folder {self.directory} belongs to encoder {stored_id!r}, not {self.info.encoder_id!r}",
                where=str(path), fix="use a different --cache folder or delete this one",
            )
        if self.info is None:
            enc = manifest["encoder"]
            self.info = EncoderInfo(enc["name"], enc["modality"], enc["kind"], enc["encoder_id"], enc.get("params", {}))
        self.dim = manifest.get("dim")
        self.failures = dict(manifest.get("failures", {}))
        self.items = manifest.get("items", {"ids": [], "keys": []})
        self._next_shard = int(manifest.get("next_shard", 1))
        for shard in manifest.get("shards", []):
            self._add_shard_to_index(shard)

    def _add_shard_to_index(self, shard: dict[str, Any]) -> None:
        number = len(self.shards)
        self.shards.append(shard)
        for row, key in enumerate(shard["keys"]):
            self._index[key] = (number, row)

    # ------------------------------------------------------------------ reading
    def __contains__(self, key: str) -> bool:
        return key in self._index or any(k == key for k in self._pending_keys)

    def __len__(self) -> int:
        return len(self._index)

    def has(self, key: str) -> bool:
        return key in self._index

    def _shard_array(self, number: int) -> np.ndarray:
        if number not in self._arrays:
            path = self.directory / self.shards[number]["file"]
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as err:
                raise UserError(
                    f"feature shard {path.name} is unreadable ({err})", where=str(path),
                    fix=f"delete {self.directory} to rebuild this encoder's cache",
                ) from err
            if arr.shape != (len(self.shards[number]["keys"]), self.dim):
                raise UserError(
                    f"feature shard {path.name} has shape {arr.shape}, manifest says "
                    f"({len(self.shards[number]['keys'])}, {self.dim})",
                    where=str(path), fix=f"delete {self.directory} to rebuild this encoder's cache",
                )
            self._arrays[number] = arr
        return self._arrays[number]

    def lookup(self, keys: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """``(features [n, dim] float32, found bool [n])`` for content keys (None -> not found)."""
        n = len(keys)
        found = np.zeros(n, dtype=bool)
        if self.dim is None:
            return np.zeros((n, 0), dtype=np.float32), found
        out = np.zeros((n, self.dim), dtype=np.float32)
        by_shard: dict[int, tuple[list[int], list[int]]] = {}
        for pos, key in enumerate(keys):
            loc = self._index.get(key) if key is not None else None
            if loc is None:
                continue
            dst, src = by_shard.setdefault(loc[0], ([], []))
            dst.append(pos)
            src.append(loc[1])
        for number, (dst, src) in by_shard.items():
            out[dst] = self._shard_array(number)[np.asarray(src)]
            found[dst] = True
        return out, found

    def failure(self, key: str) -> str | None:
        """Cached reason an input with this content key could not be encoded (corrupt file...)."""
        return self.failures.get(key)

    # ------------------------------------------------------------------ writing
    def acquire(self) -> None:
        """Take the writer lock (blocks while another process writes this store) and tidy orphans."""
        if self._lock_fh is not None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        # held open until release(): the flock lives as long as the file handle
        self._lock_fh = open(self.directory / ".lock", "a+")  # noqa: SIM115
        fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_EX)
        # Another writer may have committed while we waited: re-read before writing.
        self.shards, self._index, self._arrays = [], {}, {}
        self._read_manifest()
        self._remove_orphans()

    def release(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.flush()
        finally:
            self.release()

    def _remove_orphans(self) -> None:
        """Delete shard/temp files no manifest references (left by a killed run)."""
        referenced = {s["file"] for s in self.shards}
        for path in self.directory.iterdir():
            name = path.name
            if name.startswith(".tmp-") or (_SHARD_RE.match(name) and name not in referenced):
                m = _SHARD_RE.match(name)
                if m:
                    self._next_shard = max(self._next_shard, int(m.group(1)) + 1)
                path.unlink(missing_ok=True)
                self.orphans_removed += 1

    def add(self, keys: Sequence[str], features: np.ndarray) -> None:
        """Buffer new vectors; they reach the disk at the next :meth:`flush`."""
        self._require_lock()
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[0] != len(keys):
            raise ValueError(f"features shape {features.shape} does not match {len(keys)} keys")
        if self.dim is None:
            self.dim = int(features.shape[1])
        elif features.shape[1] != self.dim:
            raise ValueError(f"features have dim {features.shape[1]}, store has {self.dim}")
        if not np.isfinite(features).all():
            bad = int((~np.isfinite(features).all(axis=1)).sum())
            raise ValueError(f"{bad} feature rows contain NaN/inf; the encoder produced invalid output")
        self._pending_keys.extend(keys)
        self._pending_rows.append(features)

    def add_failure(self, key: str, reason: str) -> None:
        self._require_lock()
        self.failures[key] = reason

    @property
    def pending(self) -> int:
        return len(self._pending_keys)

    def set_items(self, item_ids: Iterable[Any], keys: Iterable[str | None]) -> None:
        """Record which items (original ids) the last run covered and their content keys."""
        self.items = {"ids": [_plain(i) for i in item_ids], "keys": list(keys)}

    def flush(self) -> None:
        """Commit buffered vectors: new shard file first, then the manifest (atomic, in that order)."""
        self._require_lock()
        if self._pending_keys:
            rows = np.concatenate(self._pending_rows, axis=0)
            name = self._new_shard_name()
            atomic_save_npy(self.directory / name, rows)
            self._add_shard_to_index({"file": name, "keys": list(self._pending_keys)})
            self._pending_keys, self._pending_rows = [], []
        self._write_manifest()

    def compact(self, max_shards: int = 16) -> bool:
        """Merge all shards into one when there are more than ``max_shards`` (keeps lookups fast)."""
        self._require_lock()
        if len(self.shards) <= max_shards:
            return False
        self.flush()
        keys = list(self._index)
        feats, _ = self.lookup(keys)
        old = [s["file"] for s in self.shards]
        name = self._new_shard_name()
        atomic_save_npy(self.directory / name, feats)
        self.shards, self._index, self._arrays = [], {}, {}
        self._add_shard_to_index({"file": name, "keys": keys})
        self._write_manifest()  # from here on the old shards are unreferenced
        for f in old:
            (self.directory / f).unlink(missing_ok=True)
        return True

    def _new_shard_name(self) -> str:
        while True:
            name = f"shard-{self._next_shard:06d}.npy"
            self._next_shard += 1
            if not (self.directory / name).exists():
                return name

    def _write_manifest(self) -> None:
        manifest = {
            "format": STORE_FORMAT,
            "encoder": asdict(self.info) if self.info is not None else {},
            "dim": self.dim,
            "n_vectors": len(self._index),
            "next_shard": self._next_shard,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "shards": self.shards,
            "failures": self.failures,
            "items": self.items,
        }
        data = json.dumps(manifest, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        atomic_write_bytes(self.directory / MANIFEST, data)

    def _require_lock(self) -> None:
        if self._lock_fh is None:
            raise RuntimeError("call FeatureStore.acquire() (or use `with store:`) before writing")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
