"""Events: validated as a batch, stored durably in one transaction, then folded into online state."""
from __future__ import annotations

import math
import time
from typing import Any

from fusionrec.serve.errors import ServeError
from fusionrec.serve.online import OnlineEvent
from fusionrec.serve.schemas import MAX_ID_CHARS, MAX_TIMESTAMP


class IngestMixin:
    """``POST /events`` (mixed into ``RecService``)."""

    def ingest(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Validate the whole batch, store it durably in one transaction, then update online state."""
        if not events:
            raise ServeError(422, "events", "the batch is empty; send at least one event")
        if len(events) > self.cfg.max_events_per_request:
            raise ServeError(413, "events", f"{len(events)} events in one request; the limit is "
                             f"{self.cfg.max_events_per_request}", "split the batch")
        weights = self.cfg.online.event_weights
        state = self.state
        rows = []
        now = time.time()
        for n, ev in enumerate(events):
            user, item, typ = str(ev["user_id"]), str(ev["item_id"]), str(ev.get("type") or "click")
            if not user.strip() or len(user) > MAX_ID_CHARS:
                raise ServeError(422, f"events[{n}].user_id", f"user_id must be 1-{MAX_ID_CHARS} characters")
            if item not in state.catalogue.index_of:
                raise ServeError(404, f"events[{n}].item_id", f"unknown item {item!r}",
                                 "add the item with POST /items before sending events about it")
            if typ not in weights:
                raise ServeError(422, f"events[{n}].type", f"unknown event type {typ!r}; allowed: {sorted(weights)}")
            ts = ev.get("timestamp")
            ts = now if ts is None else float(ts)
            if not (math.isfinite(ts) and 0.0 <= ts <= MAX_TIMESTAMP):
                raise ServeError(422, f"events[{n}].timestamp", "timestamp must be unix seconds between 0 and "
                                 f"{MAX_TIMESTAMP:.0f} (2100-01-01)")
            event_id = ev.get("event_id")
            rows.append((None if event_id is None else str(event_id), user, item, typ, float(weights[typ]), ts))
        with self._write_lock:
            seqs = self.store.add_events(rows)  # durable (fsynced) before we answer
            for (_event_id, user, item, _typ, weight, ts), seq in zip(rows, seqs):
                self.online.add(user, OnlineEvent(item, weight, seq, ts))
        return {"accepted": len(rows), "seqs": seqs}
