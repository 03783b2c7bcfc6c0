"""Prometheus metrics of one app: requests, latency, ingest counters and gauges over the served state."""
from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from fusionrec.serve.service import RecService


class ServeMetrics:
    """One registry per app (so tests can build many apps in one process)."""

    def __init__(self, service: RecService) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("fusionrec_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=registry)
        self.latency = Histogram("fusionrec_request_seconds", "request latency", ["route"], registry=registry,
                                 buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.events = Counter("fusionrec_events_ingested", "events accepted by POST /events", registry=registry)
        self.items = Counter("fusionrec_items_posted", "items added or updated by POST /items", registry=registry)
        Gauge("fusionrec_index_items", "items in the serving index", registry=registry).set_function(
            lambda: service.state.catalogue.n_items)
        Gauge("fusionrec_users", "users with a trained vector", registry=registry).set_function(
            lambda: len(service.state.user_ids))
        Gauge("fusionrec_online_users", "users with online events held in memory", registry=registry).set_function(
            lambda: service.online.users())
        Gauge("fusionrec_model_version", "version of the serving state (increments on swap)",
              registry=registry).set_function(lambda: service.state.version)
        self._service = service
        self._mem_cache: dict[tuple[int, int], int] = {}
        Gauge("fusionrec_index_memory_bytes", "bytes held by the faiss indexes and vectors",
              registry=registry).set_function(self._index_memory)

    def _index_memory(self) -> float:
        st = self._service.state
        if st.index is None:
            return 0.0
        key = (id(st), st.catalogue.n_items)
        if key not in self._mem_cache:
            self._mem_cache.clear()
            self._mem_cache[key] = st.index.memory_bytes() + st.sim_index.memory_bytes()
        return float(self._mem_cache[key])
