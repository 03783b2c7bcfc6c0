"""Assembling a service from a model directory, and the default full retrain.

``load_service(model_dir, cfg)`` loads the saved model (safetensors + parquet,
no pickle: :func:`fusionrec.models.io.load_model`), opens the SQLite store,
re-applies stored posted items and replays events newer than the model.

Retraining (``default_retrain``) and which model version a start serves live in
:mod:`fusionrec.serve.retrain`.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fusionrec.data.dataset import Dataset
from fusionrec.errors import UserError
from fusionrec.serve.config import ServeConfig
from fusionrec.serve.content import ContentEncoder
from fusionrec.serve.retrain import choose_version, default_retrain, training_dataset
from fusionrec.serve.service import RecService
from fusionrec.serve.state import ServiceState
from fusionrec.serve.store import EventStore

__all__ = ["build_content_encoder", "default_retrain", "load_service", "load_state", "training_dataset"]

log = logging.getLogger("fusionrec.serve")
SERVE_META = "serve_meta.json"


def build_content_encoder(dataset: Dataset, cfg: ServeConfig,
                          records: dict[str, dict[str, Any]] | None = None) -> ContentEncoder | None:
    """Encoders for new items: the ones the model was trained with, else defaults checked by width.

    ``records`` is the model's ``features.json`` (see :func:`fusionrec.encoders.ensure.read_features_json`):
    a modality made by an encoder is encoded by that encoder, rebuilt from its name and
    params (text, image, audio, attributes, CLIP from its local path) and checked against
    the recorded encoder id. A modality that came precomputed (``.npy``) falls back to the
    default text/image encoder when its width matches. A mismatch leaves the modality out
    with a warning: encoding new items with another model would put them in a different
    space than the catalogue. ``cfg.text_encoder`` / ``cfg.image_encoder`` = None switch a kind off.
    """
    encoders: dict[str, Any] = {}
    for name, mod in dataset.modalities.items():
        if (mod.kind == "text" and not cfg.text_encoder) or (mod.kind == "image" and not cfg.image_encoder):
            continue
        rec = (records or {}).get(name) or {}
        if rec.get("encoder") not in (None, "precomputed"):
            enc = _recorded_encoder(name, rec, dataset)
        else:
            enc = _default_encoder(name, mod.kind, cfg)
        if enc is None:
            continue
        if enc.dim != mod.dim:
            log.warning("modality %r has %d-d features but encoder %s gives %d-d; not encoding it for new items",
                        name, mod.dim, enc.name, enc.dim)
            continue
        encoders[name] = enc
    return ContentEncoder(encoders) if encoders else None


def _recorded_encoder(name: str, rec: dict[str, Any], dataset: Dataset) -> Any:
    """The encoder of a features.json record, fitted on the training catalogue, or None (with a warning)."""
    from fusionrec.encoders.registry import build_encoder

    try:
        enc = build_encoder(rec["encoder"], **dict(rec.get("params") or {}))
        # catalogue-level state (attribute vocabularies) comes from the items the model was trained on
        enc.fit(dataset.items, dataset.root)
        same = rec.get("encoder_id") in (None, enc.encoder_id)
    except UserError as err:
        log.warning("cannot rebuild the %r encoder %s of the served model: %s; new items get no %s",
                    name, rec.get("encoder"), err.args[0] if err.args else err, name)
        return None
    if not same:
        log.warning("the %r encoder now has id %s but the model was trained on %s (other weights or "
                    "preprocessing); new items get no %s", name, enc.encoder_id, rec.get("encoder_id"), name)
        return None
    return enc


def _default_encoder(name: str, kind: str, cfg: ServeConfig) -> Any:
    """MiniLM / EfficientNet-Lite0 (or the model folder / weights file cfg names) for precomputed modalities."""
    if kind == "text":
        from fusionrec.encoders.text import MiniLMEncoder, SentenceTransformerEncoder

        return MiniLMEncoder(modality=name) if cfg.text_encoder == "default" else \
            SentenceTransformerEncoder(model_path=cfg.text_encoder, modality=name)
    if kind == "image":
        from fusionrec.encoders.image import EfficientNetLiteEncoder

        return EfficientNetLiteEncoder(modality=name) if cfg.image_encoder == "default" else \
            EfficientNetLiteEncoder(weights_path=cfg.image_encoder, modality=name)
    return None


def read_serve_meta(model_dir: str | Path) -> dict[str, Any]:
    """The retrain facts of a model version (``trained_upto_seq``...), checked; {} when absent."""
    path = Path(model_dir) / SERVE_META
    if not path.is_file():
        return {}
    fix = "restore this model version from a backup, or serve the --model folder it was retrained from"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(f"the model version's serve facts are not valid JSON ({err})", str(path), fix) from None
    upto = meta.get("trained_upto_seq", 0) if isinstance(meta, dict) else None
    # a sequence number the event store can hold (SQLite INTEGER, PostgreSQL BIGINT)
    if isinstance(upto, bool) or not isinstance(upto, int) or not 0 <= upto < 2**63:
        raise UserError(f"trained_upto_seq {upto!r} is not an event sequence number", str(path), fix)
    return meta


def load_state(model_dir: str | Path, cfg: ServeConfig, store: EventStore, version: int = 1) -> ServiceState:
    from fusionrec.models.io import load_model

    model_dir = Path(model_dir)
    loaded = load_model(model_dir)
    meta = read_serve_meta(model_dir)
    return ServiceState.build(loaded.model, loaded.dataset, loaded.config, cfg, store.items(),
                              trained_upto_seq=int(meta.get("trained_upto_seq", 0)), version=version,
                              model_dir=str(model_dir))


def open_store(path: str | Path, local_dir: str | Path | None = None) -> EventStore:
    """The event store, or a UserError when the file is not an SQLite database (damaged, or another file).

    A ``postgresql://`` URL opens the PostgreSQL store shared by replicas (:mod:`fusionrec.serve.store_pg`);
    ``local_dir`` is where that replica keeps its uploaded files.
    """
    import sqlite3

    from fusionrec.serve.store_pg import PostgresEventStore, is_postgres_url

    if is_postgres_url(path):
        return PostgresEventStore(str(path), local_dir)

    try:
        return EventStore(path)
    except sqlite3.OperationalError as err:  # a folder that does not exist, no permission
        raise UserError(f"the service's event database cannot be opened: {err}", str(path),
                        "check that its folder exists and is writable (--db PATH chooses another file)") from None
    except sqlite3.DatabaseError as err:  # not a database (damaged, or some other file)
        raise UserError(f"the service's event database cannot be read: {err}", str(path),
                        "restore it from a backup, or move it away to start with an empty store "
                        "(stored events and posted items are then lost)") from None


def load_service(model_dir: str | Path, cfg: ServeConfig, encoder: ContentEncoder | None | str = "auto",
                 retrain: bool = True) -> RecService:
    """A ready :class:`RecService` for the saved model in ``model_dir``."""
    model_dir = Path(model_dir)
    if not (model_dir / "model.yaml").is_file():
        raise UserError(f"{model_dir} is not a saved fusionrec model (no model.yaml)", "--model",
                        "pass the model/ folder written by `fusionrec train`, e.g. runs/<run>/model")
    from fusionrec.models.io import check_model_folder

    check_model_folder(model_dir)  # a damaged folder is one located message, before anything reads it
    store = open_store(cfg.db_path or model_dir / "serve.sqlite3", local_dir=model_dir)
    # --model is served as given unless use_retrained asks for its latest retrained version
    served_dir, version_name, versions, base, newer = choose_version(model_dir, cfg, store)
    state = load_state(served_dir, cfg, store)
    state.version_name = version_name
    if encoder == "auto":
        from fusionrec.encoders.ensure import read_features_json

        encoder = build_content_encoder(state.dataset, cfg, read_features_json(served_dir))
    media_root = cfg.media_root or (str(state.dataset.root) if state.dataset.root is not None else None)
    service = RecService(state, store, cfg, encoder, media_root, default_retrain if retrain else None,
                         versions=versions, base_fingerprint=base, retrained_available=newer)
    if getattr(store, "dsn", None):  # PostgreSQL: other replicas write too; apply their events/items/versions
        from fusionrec.serve.replicas import ReplicaSync

        service.replica_sync = ReplicaSync(service, cfg.replica_sync_interval).start()
    return service
