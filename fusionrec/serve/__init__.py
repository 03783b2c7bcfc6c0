"""Real-time serving: ``fusionrec serve --model DIR`` (FastAPI + uvicorn + faiss + SQLite).

* :mod:`fusionrec.serve.app` -- HTTP routes (``create_app``), errors as JSON 4xx;
* :mod:`fusionrec.serve.service` -- the logic (``RecService``);
* :mod:`fusionrec.serve.state` -- one swappable snapshot of a trained model;
* :mod:`fusionrec.serve.index` -- faiss top-k (exact / HNSW / IVF, filters);
* :mod:`fusionrec.serve.online` -- online user vectors from events;
* :mod:`fusionrec.serve.content` -- content encoder adapter and content -> item-space map;
* :mod:`fusionrec.serve.store` -- durable events/items (SQLite WAL);
* :mod:`fusionrec.serve.security` -- API keys and media-root path checks;
* :mod:`fusionrec.serve.loader` -- loading a model directory, retraining.
"""
