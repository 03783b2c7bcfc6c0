"""API keys and media paths: the two places where a request could reach too far.

* Keys come from the environment or a file, never from code or config, and are
  compared with :func:`hmac.compare_digest` so the time taken does not leak how
  many leading characters of a guess were right.
* Image paths from requests are resolved (symlinks and ``..`` included) and must
  stay inside the configured media root.
"""
from __future__ import annotations

import hmac
import os
from pathlib import Path

from fusionrec.errors import UserError


def load_api_keys(env_var: str | None, key_file: str | Path | None) -> list[str]:
    """Keys from ``$env_var`` (comma-separated) and/or ``key_file`` (one per line, ``#`` comments)."""
    keys: list[str] = []
    if env_var and os.environ.get(env_var):
        keys += [k.strip() for k in os.environ[env_var].split(",") if k.strip()]
    if key_file:
        path = Path(key_file)
        if not path.is_file():
            raise UserError(f"API key file {path} does not exist", "api_key_file / --api-key-file",
                            "create it with one key per line, or set the environment variable instead")
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                keys.append(line)
    short = [k for k in keys if len(k) < 16]
    if short:
        raise UserError(f"{len(short)} API key(s) are shorter than 16 characters",
                        env_var if not key_file else str(key_file),
                        "use long random keys, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    return keys


class KeyChecker:
    """Constant-time membership test of a presented key against the configured keys."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode() for k in keys]

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def check(self, presented: str | None) -> bool:
        if presented is None or not self._keys:
            return False
        given = presented.encode()
        ok = False
        # compare against every key (no early exit) so timing does not reveal which matched
        for key in self._keys:
            ok |= hmac.compare_digest(given, key)
        return ok


class PathEscapeError(ValueError):
    """A requested path resolves outside the media root."""


def resolve_media_path(root: str | Path | None, requested: str) -> Path:
    """The real path of ``requested`` (relative to ``root`` or absolute), which must lie inside ``root``.

    ``Path.resolve`` follows every symlink and collapses ``..``, so a link that
    points outside the root, or ``../../etc/passwd``, resolves outside and is refused.
    """
    if root is None:
        raise PathEscapeError("no media root is configured, so image paths are not accepted; send image bytes (base64)")
    if "\x00" in requested:
        raise PathEscapeError("path contains a NUL byte")
    base = Path(root).resolve()
    candidate = Path(requested)
    full = (candidate if candidate.is_absolute() else base / candidate).resolve()
    if full != base and base not in full.parents:
        raise PathEscapeError(f"path {requested!r} resolves outside the media root")
    if not full.is_file():
        raise FileNotFoundError(f"no file at {requested!r} under the media root")
    return full
