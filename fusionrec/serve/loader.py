"""Assembling a service from a model directory, and the default full retrain.

``load_service(model_dir, cfg)`` loads the saved model (safetensors + parquet,
no pickle: :func:`fusionrec.models.io.load_model`), opens the SQLite store,
re-applies stored posted items and replays events newer than the model.

``default_retrain`` is what ``POST /admin/retrain`` (and ``--retrain-every``)
runs: the model's own training data plus every stored event, minus forgotten
users, trained with the same model name, hyper-parameters and trainer settings
as the served run (:class:`fusionrec.train.Trainer`, early stopping on the
validation split when there is one), saved next to the served model and loaded
back into a new :class:`ServiceState` that the service swaps in.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset, FeatureModality
from fusionrec.errors import UserError
from fusionrec.serve.config import ServeConfig
from fusionrec.serve.content import ContentEncoder
from fusionrec.serve.service import RecService
from fusionrec.serve.state import ServiceState, _as_key
from fusionrec.serve.store import EventStore

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
    path = Path(model_dir) / SERVE_META
    return json.loads(path.read_text()) if path.is_file() else {}


def load_state(model_dir: str | Path, cfg: ServeConfig, store: EventStore, version: int = 1) -> ServiceState:
    from fusionrec.models.io import load_model

    model_dir = Path(model_dir)
    loaded = load_model(model_dir)
    meta = read_serve_meta(model_dir)
    return ServiceState.build(loaded.model, loaded.dataset, loaded.config, cfg, store.items(),
                              trained_upto_seq=int(meta.get("trained_upto_seq", 0)), version=version,
                              model_dir=str(model_dir))


def load_service(model_dir: str | Path, cfg: ServeConfig, encoder: ContentEncoder | None | str = "auto",
                 retrain: bool = True) -> RecService:
    """A ready :class:`RecService` for the saved model in ``model_dir``."""
    model_dir = Path(model_dir)
    if not (model_dir / "model.yaml").is_file():
        raise UserError(f"{model_dir} is not a saved fusionrec model (no model.yaml)", "--model",
                        "pass the model/ folder written by `fusionrec train`, e.g. runs/<run>/model")
    store = EventStore(cfg.db_path or model_dir / "serve.sqlite3")
    current = store.get_meta("current_model_dir")
    if current and current != str(model_dir) and (Path(current) / "model.yaml").is_file():
        # a retrain swapped in a newer model before the last shutdown: keep serving that one
        log.info("serving the retrained model %s (newer than %s)", current, model_dir)
        model_dir = Path(current)
    state = load_state(model_dir, cfg, store)
    if encoder == "auto":
        from fusionrec.encoders.ensure import read_features_json

        encoder = build_content_encoder(state.dataset, cfg, read_features_json(model_dir))
    media_root = cfg.media_root or (str(state.dataset.root) if state.dataset.root is not None else None)
    return RecService(state, store, cfg, encoder, media_root, default_retrain if retrain else None)


# ---------------------------------------------------------------------- retrain
def training_dataset(service: RecService, upto_seq: int) -> Dataset:
    """The served model's dataset + stored events (``seq <= upto_seq``) + posted items, minus forgotten users.

    Original interactions keep their split labels; stored events join the
    training split (they happened after the model's data, so they are never test).
    """
    state = service.state
    base = state.dataset
    forgotten = set(service.forgotten)
    cat = state.catalogue
    item_ids = list(base.item_ids) + [i for i in cat.item_ids[base.n_items:]]
    item_row = {_as_key(i): j for j, i in enumerate(item_ids)}

    keep_users = [u for u in base.user_ids if _as_key(u) not in forgotten]
    users: list[Any] = list(keep_users)
    user_row = {_as_key(u): j for j, u in enumerate(users)}
    old_to_new = np.array([user_row.get(_as_key(u), -1) for u in base.user_ids], dtype=np.int64)
    inter = base.interactions.copy()
    inter["user"] = old_to_new[inter["user"].to_numpy()]
    inter = inter[inter["user"] >= 0]

    new_rows = []
    for ev in service.store.events():
        if ev.seq > upto_seq:
            break
        # a forgotten id that came back is a new person: its old rows are gone, only new events remain
        if ev.user not in user_row:
            user_row[ev.user] = len(users)
            users.append(ev.user)
        row = item_row.get(ev.item)
        if row is None:
            continue
        new_rows.append((user_row[ev.user], row, np.nan, ev.ts, 1.0, "train" if base.has_split else None))
    if new_rows:
        extra = pd.DataFrame(new_rows, columns=["user", "item", "rating", "timestamp", "label", "split"])
        inter = pd.concat([inter, extra], ignore_index=True)
    modalities = {n: FeatureModality(n, base.modalities[n].kind, cat.features[n], cat.masks[n], base.modalities[n].source)
                  for n in base.modalities}
    return Dataset(base.name, users, item_ids, inter.reset_index(drop=True), cat.frame.copy(), modalities, base.root)


def default_retrain(service: RecService) -> ServiceState:
    """Retrain the served model on its data + stored events and load the result (see module docstring)."""
    from fusionrec.config import RunConfig, deep_merge, parse_overrides
    from fusionrec.models.io import save_model
    from fusionrec.models.registry import build_model
    from fusionrec.train.trainer import Trainer

    state = service.state
    upto = service.store.max_seq()
    dataset = training_dataset(service, upto)
    run_cfg = state.config
    if service.cfg.retrain_overrides:
        run_cfg = RunConfig.model_validate(deep_merge(run_cfg.model_dump(mode="json"),
                                                      parse_overrides(service.cfg.retrain_overrides)))
    data = dataset.train_data(run_cfg.data.modalities)
    model = build_model(run_cfg.model.name, data, dict(run_cfg.model.params))
    evaluator = None
    if dataset.has_split and (dataset.interactions["split"] == "valid").any():
        from fusionrec.evaluate import Evaluator

        evaluator = Evaluator(dataset, ks=tuple(run_cfg.eval.ks), protocol=run_cfg.eval.protocol,
                              batch_users=run_cfg.eval.batch_users)
    train_cfg = run_cfg.train.model_copy(update={"progress": False, "checkpoint": False, "resume": False})
    Trainer(model, data, train_cfg, evaluator=evaluator).fit()
    root = Path(state.model_dir or service.store.path.parent)
    out = root.parent / f"{root.name}-retrain-{time.strftime('%Y%m%d-%H%M%S')}-{upto}"
    save_model(model, run_cfg, dataset, out)
    from fusionrec.encoders.ensure import read_features_json, write_features_json

    # the retrained model reads the same features, so new items keep the same encoders
    write_features_json(read_features_json(root), out)
    (out / SERVE_META).write_text(json.dumps({"trained_upto_seq": upto, "parent": str(root)}))
    new_state = load_state(out, service.cfg, service.store, version=state.version + 1)
    service.store.set_meta("current_model_dir", str(out))
    return new_state
