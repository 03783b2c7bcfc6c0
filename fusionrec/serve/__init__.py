"""Real-time serving: ``fusionrec serve --model DIR`` (FastAPI + uvicorn + faiss + SQLite).

HTTP: :mod:`~fusionrec.serve.app` (``create_app``: middleware, error handlers, the UI mount),
:mod:`~fusionrec.serve.routes` (endpoints, each with its role and response model),
:mod:`~fusionrec.serve.schemas` (request/response models), :mod:`~fusionrec.serve.access`
(keys, roles, rate limits, before the body is read), :mod:`~fusionrec.serve.middleware`
(body limit, OPTIONS, metrics), :mod:`~fusionrec.serve.metrics`.

Logic: :mod:`~fusionrec.serve.service` (``RecService``) with one module per concern --
:mod:`~fusionrec.serve.recommend`, :mod:`~fusionrec.serve.ingest`, :mod:`~fusionrec.serve.items`,
:mod:`~fusionrec.serve.explain`, :mod:`~fusionrec.serve.privacy`, :mod:`~fusionrec.serve.lifecycle`;
:mod:`~fusionrec.serve.limits` (bounds checked before the work), :mod:`~fusionrec.serve.state`
(one swappable snapshot of a model), :mod:`~fusionrec.serve.index` (faiss top-k),
:mod:`~fusionrec.serve.online` (online user vectors, LRU), :mod:`~fusionrec.serve.content`
(content encoder, content map), :mod:`~fusionrec.serve.store` (SQLite WAL store),
:mod:`~fusionrec.serve.security` (keys with roles, media paths), :mod:`~fusionrec.serve.loader`
(loading a model folder), :mod:`~fusionrec.serve.retrain` and :mod:`~fusionrec.serve.versions`
(retrains published as versions). Operator guide: docs/guide/serving.md.
"""
