"""The default full retrain, and which model version a start serves.

``default_retrain`` is what ``POST /admin/retrain``, ``--retrain-every`` and a forget run: the
served model's training data plus the stored events it has not seen yet, minus forgotten
users, trained with the same model name, hyper-parameters and trainer settings as the served
run (:class:`fusionrec.train.Trainer`, early stopping on the validation split when there is
one), published as a new version (:class:`~fusionrec.serve.versions.ModelVersions`) and
loaded back into a new :class:`~fusionrec.serve.state.ServiceState` that the service swaps in.

A retrained model's dataset already holds every event up to its ``trained_upto_seq``, so only
newer events are added: a user's rows are counted once however many retrains follow.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset, FeatureModality
from fusionrec.errors import UserError
from fusionrec.serve.config import ServeConfig
from fusionrec.serve.state import ServiceState, _as_key
from fusionrec.serve.store import EventStore
from fusionrec.serve.versions import ModelVersions, model_fingerprint

if TYPE_CHECKING:
    from fusionrec.serve.service import RecService

log = logging.getLogger("fusionrec.serve")


def versions_root(cfg: ServeConfig, store: EventStore) -> Path:
    return Path(cfg.versions_dir) if cfg.versions_dir else store.path.parent / f"{store.path.stem}-models"


def choose_version(model_dir: Path, cfg: ServeConfig, store: EventStore
                   ) -> tuple[Path, str, ModelVersions, str, str | None]:
    """``(folder, version name, versions, base fingerprint, newer version not served)`` for a start.

    ``--model`` is served as given unless ``use_retrained`` asks for its latest retrained
    version; a newer version left unused is named in a warning, and a version retrained from
    another model folder is never served on top of this one.
    """
    versions = ModelVersions(versions_root(cfg, store), cfg.keep_versions)
    base = model_fingerprint(model_dir)
    latest = versions.current()
    mine = latest if latest is not None and versions.meta(latest).get("base") == base else None
    if cfg.use_retrained:
        if latest is None:
            log.warning("use_retrained: no retrained version yet; serving --model %s", model_dir)
        elif mine is None:
            raise UserError(f"the latest retrained version {latest} in {versions.root} was retrained from "
                            f"another model folder, not from {model_dir}", "--use-retrained",
                            "serve the model it was retrained from, or use another --db for this model")
        else:
            return versions.path(mine), mine, versions, base, None
    elif mine is not None:
        log.warning("a retrained version %s of this model exists (%s); serving --model as given. Pass "
                    "--use-retrained (use_retrained: true in the serve config) to serve it",
                    mine, versions.root)
    return model_dir, "base", versions, base, mine


def _hidden_users(service: RecService, state: ServiceState) -> set[str]:
    """Users of the state's dataset that were forgotten after the state was trained."""
    forgotten = service.forgotten
    if not forgotten:
        return set()
    out = set()
    for user in state.dataset.user_ids:
        key = _as_key(user)
        seq = forgotten.get(service.store.user_hash(key))
        if seq is not None and state.trained_upto_seq < seq:
            out.add(key)
    return out


def training_dataset(service: RecService, upto_seq: int) -> Dataset:
    """The served model's dataset + stored events it has not seen (``seq <= upto_seq``) + posted items,
    minus users forgotten since it was trained.

    Original interactions keep their split labels; stored events join the
    training split (they happened after the model's data, so they are never test).
    """
    state = service.state
    base = state.dataset
    hidden = _hidden_users(service, state)
    cat = state.catalogue
    item_ids = list(base.item_ids) + [i for i in cat.item_ids[base.n_items:]]
    item_row = {_as_key(i): j for j, i in enumerate(item_ids)}

    users: list[Any] = [u for u in base.user_ids if _as_key(u) not in hidden]
    user_row = {_as_key(u): j for j, u in enumerate(users)}
    old_to_new = np.array([user_row.get(_as_key(u), -1) for u in base.user_ids], dtype=np.int64)
    inter = base.interactions.copy()
    inter["user"] = old_to_new[inter["user"].to_numpy()]
    inter = inter[inter["user"] >= 0]

    new_rows = []
    for ev in service.store.events(after_seq=state.trained_upto_seq):
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
    """Retrain the served model on its data + new stored events, publish it as a version and load it."""
    from fusionrec.config import RunConfig, deep_merge, parse_overrides
    from fusionrec.encoders.ensure import read_features_json, write_features_json
    from fusionrec.models.io import save_model
    from fusionrec.models.registry import build_model
    from fusionrec.serve.loader import load_state
    from fusionrec.train.trainer import Trainer

    state = service.state
    upto = service.store.max_seq()
    generation = service.store.forget_generation()
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
    from fusionrec.train.device import resolve_device

    # on what this server has: a run trained on a GPU retrains on the CPU of a server without one
    device = str(resolve_device(run_cfg.train.device, strict=False))
    train_cfg = run_cfg.train.model_copy(update={"progress": False, "checkpoint": False, "resume": False,
                                                 "device": device})
    Trainer(model, data, train_cfg, evaluator=evaluator).fit()
    source = Path(state.model_dir) if state.model_dir else None

    def write(out: Path) -> None:
        save_model(model, run_cfg, dataset, out)
        if source is not None:
            # the retrained model reads the same features, so new items keep the same encoders
            write_features_json(read_features_json(source), out)

    name = service.versions.publish(write, {"trained_upto_seq": upto, "parent": state.version_name,
                                            "base": service.base_fingerprint, "forget_generation": generation})
    new_state = load_state(service.versions.path(name), service.cfg, service.store, version=state.version + 1)
    new_state.version_name = name
    return new_state
