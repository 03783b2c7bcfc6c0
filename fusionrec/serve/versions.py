"""Retrained model versions under one root: short names, atomic publish, bounded history.

Layout::

    <root>/v2/          a complete model folder (save_model output + serve_meta.json, written last)
    <root>/v3/
    <root>/CURRENT      the name of the published version, replaced atomically

A version is written into ``<root>/.partial-vN`` and renamed to ``vN`` only when complete;
``CURRENT`` is switched after that (write a temporary file, fsync, ``os.replace``). A kill at
any point leaves either the old pointer or the new one, never a half-written version it points
to; partial folders (and version folders without ``serve_meta.json``) are removed at start.
Only the newest ``keep`` versions are kept. ``v1`` is the ``--model`` folder the operator gave,
which this class never touches; its fingerprint is recorded in every version so a version is
only ever served on top of the model it was retrained from.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# the same fsync-the-rename rule as the feature store
from fusionrec.encoders.store import _fsync_dir

log = logging.getLogger("fusionrec.serve")

META = "serve_meta.json"
POINTER = "CURRENT"
PARTIAL = ".partial-"
_NAME = re.compile(r"^v(\d{1,9})$")


def model_fingerprint(model_dir: str | Path) -> str:
    """Content hash of a model folder's description and weights (not its path)."""
    model_dir = Path(model_dir)
    digest = hashlib.sha256()
    for name in ("model.yaml", "config.yaml"):
        path = model_dir / name
        if path.is_file():
            digest.update(path.read_bytes())
    for path in sorted(model_dir.glob("*.safetensors")):
        digest.update(path.name.encode())
        digest.update(str(path.stat().st_size).encode())
        with open(path, "rb") as fh:
            digest.update(fh.read(1 << 20))
    return digest.hexdigest()[:32]




class ModelVersions:
    """See the module docstring."""

    def __init__(self, root: str | Path, keep: int = 3) -> None:
        self.root = Path(root)
        self.keep = keep
        self.root.mkdir(parents=True, exist_ok=True)
        self.clean_partial()

    # ------------------------------------------------------------------ reading
    def names(self) -> list[str]:
        """Complete versions, oldest first."""
        found = []
        for path in self.root.iterdir():
            m = _NAME.match(path.name)
            if m and path.is_dir() and (path / META).is_file():
                found.append((int(m.group(1)), path.name))
        return [name for _, name in sorted(found)]

    def current(self) -> str | None:
        """The published version (None: none yet, or its folder is gone)."""
        pointer = self.root / POINTER
        if not pointer.is_file():
            return None
        name = pointer.read_text().strip()
        return name if _NAME.match(name) and (self.root / name / META).is_file() else None

    def path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ValueError(f"not a version name: {name!r}")
        return self.root / name

    def meta(self, name: str) -> dict[str, Any]:
        try:
            return json.loads((self.path(name) / META).read_text())
        except (OSError, ValueError):
            return {}

    def _next_number(self) -> int:
        numbers = [int(m.group(1)) for p in self.root.iterdir() if (m := _NAME.match(p.name.removeprefix(PARTIAL)))]
        return max([1, *numbers]) + 1

    # ------------------------------------------------------------------ writing
    def clean_partial(self) -> list[str]:
        """Remove folders a kill left behind: ``.partial-*`` and versions without their metadata."""
        removed = []
        for path in self.root.iterdir():
            broken = path.name.startswith(PARTIAL) or (_NAME.match(path.name) and not (path / META).is_file())
            if broken and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        if removed:
            log.warning("removed incomplete model versions %s (a retrain was interrupted)", removed)
        return removed

    def publish(self, write: Callable[[Path], None], meta: dict[str, Any]) -> str:
        """Write a new version with ``write(folder)``, then make it current; returns its name."""
        name = f"v{self._next_number()}"
        partial = self.root / f"{PARTIAL}{name}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        try:
            write(partial)
            # the metadata is written last: a folder with it is complete
            (partial / META).write_text(json.dumps({**meta, "version": name, "created": time.time()}))
            _fsync_dir(partial)
            os.replace(partial, self.root / name)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        self._set_current(name)
        self.prune()
        return name

    def _set_current(self, name: str) -> None:
        tmp = self.root / f".{POINTER}.tmp"
        with open(tmp, "w") as fh:
            fh.write(name + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.root / POINTER)
        _fsync_dir(self.root)

    def prune(self, keep: int | None = None) -> list[str]:
        """Delete all but the newest ``keep`` versions (never the current one)."""
        keep = self.keep if keep is None else keep
        current = self.current()
        names = self.names()
        old = [n for n in names[:-keep] if n != current] if keep > 0 else []
        for name in old:
            shutil.rmtree(self.root / name, ignore_errors=True)
        return old

    def purge_tainted(self, generation: int, keep: set[str]) -> list[str]:
        """Delete versions trained before forget number ``generation`` (they may hold the user), except ``keep``."""
        removed = []
        for name in self.names():
            if name in keep:
                continue
            if int(self.meta(name).get("forget_generation", -1)) < generation:
                shutil.rmtree(self.root / name, ignore_errors=True)
                removed.append(name)
        return removed
