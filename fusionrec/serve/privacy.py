"""Forgetting a user (``DELETE /users/{id}``), so that it holds on disk as well as in memory.

The store deletes the user's events with ``secure_delete`` on and checkpoints the WAL; the
online state drops the user; model versions trained before the forget are deleted, except the
one being served, which a retrain (started here, or queued behind a running one) replaces.
The ``--model`` folder the operator passed is never modified: a user of its training data
stays there (see docs/guide/serving.md), though the service never serves its vector again.
"""
from __future__ import annotations

from typing import Any

from fusionrec.serve.errors import ServeError


class PrivacyMixin:
    """``DELETE /users/{id}`` (mixed into ``RecService``)."""

    def forget_user(self, user_id: str) -> dict[str, Any]:
        state = self.state
        user_id = str(user_id)
        if self._base_user(state, user_id) is None and not self.online.has(user_id):
            raise ServeError(404, "user_id", f"unknown user {user_id!r}")
        with self._write_lock:
            n, seq = self.store.forget_user(user_id)
            self.online.forget(user_id)
            self.forgotten[self.store.user_hash(user_id)] = seq
        removed: list[str] = []
        if self.versions is not None:
            # the served version and a just-published one stay until the retrain below replaces them
            keep = {self.state.version_name, self.versions.current()}
            removed = self.versions.purge_tainted(self.store.forget_generation(), keep=keep)
        retrain = self.request_retrain() if self.cfg.retrain_after_forget else "off"
        return {"user_id": user_id, "deleted_events": n, "forgotten": True, "retrain": retrain,
                "versions_removed": removed}
