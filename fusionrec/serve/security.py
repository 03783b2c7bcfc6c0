"""API keys with roles, and media paths: the places where a request could reach too far.

* Keys come from the environment or a file, never from code or config. Each carries a role:
  ``read`` (recommendations, profiles, explanations), ``write`` (also events and items) or
  ``admin`` (also forgetting users and retraining). ``KEY:role`` sets it; a bare ``KEY`` is ``write``.
* A presented key is hashed and compared with :func:`hmac.compare_digest` against every
  configured key's hash, so neither the time taken nor an early exit reveals how close a guess was.
* Image paths from requests are resolved (symlinks and ``..`` included) and must
  stay inside the configured media root.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from fusionrec.errors import UserError

ROLES = ("read", "write", "admin")
ROLE_RANK = {role: n for n, role in enumerate(ROLES)}
DEFAULT_ROLE = "write"


def _parse_entry(entry: str, where: str) -> tuple[str, str]:
    key, sep, role = entry.rpartition(":")
    if not sep:
        return entry, DEFAULT_ROLE
    if role not in ROLES:
        raise UserError(f"unknown role {role!r} for an API key", where,
                        f"write KEY:read, KEY:write or KEY:admin (a bare KEY is {DEFAULT_ROLE})")
    return key, role


def load_api_keys(env_var: str | None, key_file: str | Path | None) -> dict[str, str]:
    """Key -> role from ``$env_var`` (comma-separated) and/or ``key_file`` (one per line, ``#`` comments)."""
    entries: list[tuple[str, str]] = []
    if env_var and os.environ.get(env_var):
        entries += [(e.strip(), f"${env_var}") for e in os.environ[env_var].split(",") if e.strip()]
    if key_file:
        path = Path(key_file)
        if not path.is_file():
            raise UserError(f"API key file {path} does not exist", "api_key_file / --api-key-file",
                            "create it with one KEY:role per line, or set the environment variable instead")
        for n, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if line and not line.startswith("#"):
                entries.append((line, f"{path}:{n}"))
    keys: dict[str, str] = {}
    for entry, where in entries:
        key, role = _parse_entry(entry, where)
        keys[key] = role
    short = [k for k in keys if len(k) < 16]
    if short:
        raise UserError(f"{len(short)} API key(s) are shorter than 16 characters",
                        env_var if not key_file else str(key_file),
                        "use long random keys, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    return keys


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class KeyChecker:
    """Constant-time lookup of a presented key's role.

    ``keys``: key -> role, or a list of keys (each ``KEY`` or ``KEY:role``; bare keys are ``write``).
    """

    def __init__(self, keys: Mapping[str, str] | Iterable[str]) -> None:
        if isinstance(keys, Mapping):
            pairs = [(k, r) for k, r in keys.items()]
        else:
            pairs = [_parse_entry(k, "keys") for k in keys]
        bad = [r for _, r in pairs if r not in ROLES]
        if bad:
            raise UserError(f"unknown API key role(s) {bad}", "keys", f"use one of {list(ROLES)}")
        self._keys = [(key_digest(k), r) for k, r in pairs]

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def role_of(self, presented: str | None) -> str | None:
        """The role of ``presented``, or None when it is not a configured key."""
        if presented is None or not self._keys:
            return None
        given = key_digest(presented)
        found = None
        # compare against every key (no early exit) so timing does not reveal which matched
        for digest, role in self._keys:
            if hmac.compare_digest(given, digest):
                found = role
        return found

    def check(self, presented: str | None, role: str = "read") -> bool:
        """True when ``presented`` is a key whose role includes ``role``."""
        have = self.role_of(presented)
        return have is not None and ROLE_RANK[have] >= ROLE_RANK[role]


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
