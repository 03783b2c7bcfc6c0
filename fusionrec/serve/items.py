"""Item upserts: typed, bounded and encoded before anything is stored (content cold start)."""
from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fusionrec.data.roles import split_list
from fusionrec.data.validation.items import join_text
from fusionrec.serve.content import ContentEncodingError
from fusionrec.serve.errors import ServeError
from fusionrec.serve.limits import (
    AttributeTypeError,
    check_attribute_keys,
    check_file_size,
    check_image_header,
    conform_attributes,
    read_bounded,
)
from fusionrec.serve.recommend import DESCRIPTION_COLUMNS
from fusionrec.serve.schemas import MAX_ID_CHARS
from fusionrec.serve.security import PathEscapeError, resolve_media_path
from fusionrec.serve.store import StoredItem

if TYPE_CHECKING:
    from fusionrec.serve.state import ServiceState

_PATH_FIX = "use a path relative to the media root, without '..' or links leading out"


class ItemsMixin:
    """``POST /items`` (mixed into ``RecService``)."""

    def upsert_items(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Encode, store and index items at once (content cold start)."""
        if not items:
            raise ServeError(422, "items", "send at least one item")
        if len(items) > self.cfg.max_items_per_request:
            raise ServeError(413, "items", f"{len(items)} items in one request; the limit is "
                             f"{self.cfg.max_items_per_request}", "split the batch")
        state = self.state
        if state.inner_product and state.placement is None:
            raise ServeError(409, "items", "this model was trained without content features, so posted items "
                             "cannot be placed in its item space", "encode the catalogue (fusionrec encode), "
                             "retrain with text/image modalities and serve that model")
        prepared = [self._prepare_item(state, it, f"items[{n}]") for n, it in enumerate(items)]
        # the attribute columns the whole batch would add, counted together
        new_keys = {k: None for it in prepared for k in it.attributes}
        check_attribute_keys(state.catalogue.frame, new_keys, "items", len(new_keys) or 1,
                             self.cfg.max_attribute_columns)
        results = []
        with self._write_lock:
            self.store.upsert_items(prepared)
            state = self.state
            for it in prepared:
                row, created = state.upsert_item(it)
                results.append({"item_id": it.item_id, "created": created, "cold": bool(state.catalogue.cold[row])})
        return {"items": results, "n_items": self.state.catalogue.n_items}

    def _prepare_item(self, state: ServiceState, it: dict[str, Any], where: str) -> StoredItem:
        item_id = str(it["item_id"])
        if not item_id.strip() or len(item_id) > MAX_ID_CHARS:
            raise ServeError(422, f"{where}.item_id", f"item_id must be 1-{MAX_ID_CHARS} characters")
        text = it.get("text")
        attributes = self._typed_attributes(state, dict(it.get("attributes") or {}), f"{where}.attributes")
        image_bytes, image_file, image_field = self._image(it, where)
        audio_file = self._media_file(it.get("audio_path"), f"{where}.audio_path")
        if audio_file is not None:
            check_file_size(audio_file, self.cfg.max_media_file_bytes, f"{where}.audio_path")
        features: dict[str, np.ndarray] = {}
        # attributes such as title/genres feed the text template too, so they count as content
        has_content = (bool(text and str(text).strip()) or image_file is not None or audio_file is not None
                       or any(isinstance(v, str) and v.strip() for v in attributes.values()))
        if has_content:
            if self.encoder is None:
                raise ServeError(409, where, "the server runs without a content encoder, so item text/images "
                                 "cannot be encoded", "start fusionrec serve with text/image encoders enabled")
            fields = self._item_fields(state, item_id, text, attributes, image_file)
            fields["audio_path"] = str(audio_file) if audio_file is not None else None
            try:
                features = self.encoder.encode_item(fields, None)
            except ContentEncodingError as err:
                kind = self.encoder.kinds().get(err.modality, "")
                field = {"image": image_field, "audio": f"{where}.audio_path",
                         "attribute": f"{where}.attributes"}.get(kind, f"{where}.text")
                raise ServeError(422, field, f"cannot encode {err.modality}: {err.reason}") from err
        row = state.catalogue.index_of.get(item_id)
        cold_target = row is None or bool(state.catalogue.cold[row])
        if state.inner_product and cold_target and not state.can_place(features):
            raise ServeError(422, where, f"item {item_id!r} has no content the model can use "
                             f"(needs one of {state.placement_modalities})",
                             "send 'text' and/or an image")
        return StoredItem(item_id, text, image_bytes, attributes, features)

    def _typed_attributes(self, state: ServiceState, attributes: dict[str, Any], field: str) -> dict[str, Any]:
        frame = state.catalogue.frame
        check_attribute_keys(frame, attributes, field, self.cfg.max_attributes_per_item,
                             self.cfg.max_attribute_columns)
        try:
            return conform_attributes(frame, attributes)
        except AttributeTypeError as err:
            raise ServeError(422, f"{field}.{err.key}", str(err),
                             "send a value of the column's type (see GET /items/{id} of a catalogue item)") from err

    def _image(self, it: dict[str, Any], where: str) -> tuple[bytes | None, Path | None, str]:
        """The posted image's bytes and file (uploads are saved server-side), checked from its header."""
        limit = self.cfg.max_media_file_bytes
        if it.get("image_base64"):
            field = f"{where}.image_base64"
            if len(it["image_base64"]) > limit * 4 // 3 + 4:
                raise ServeError(413, field, f"image is over {limit} bytes; the limit is {limit} "
                                 "(max_media_file_bytes)", "send a smaller image")
            try:
                data = base64.b64decode(it["image_base64"], validate=True)
            except (binascii.Error, ValueError) as err:
                raise ServeError(422, field, f"not valid base64: {err}") from err
            check_image_header(data, field, self.cfg.max_image_pixels, self.cfg.max_image_aspect)
            return data, self._save_upload(data), field
        field = f"{where}.image_path"
        path = self._media_file(it.get("image_path"), field)
        if path is None:
            return None, None, field
        data = read_bounded(path, limit, field)
        check_image_header(data, field, self.cfg.max_image_pixels, self.cfg.max_image_aspect)
        return data, path, field

    def _media_file(self, value: Any, field: str) -> Path | None:
        """A media file named by a posted item, checked to lie under the media root."""
        if not value:
            return None
        try:
            return resolve_media_path(self.media_root, str(value))
        except PathEscapeError as err:
            raise ServeError(422, field, str(err), _PATH_FIX) from err
        except FileNotFoundError as err:
            raise ServeError(422, field, str(err), "upload the file under the media root first") from err

    def _item_fields(self, state: ServiceState, item_id: str, text: str | None, attributes: dict[str, Any],
                     image_file: Path | None) -> dict[str, Any]:
        """One row shaped like the catalogue's item table, so the encoders read it like a catalogue item."""
        fields: dict[str, Any] = {str(c): None for c in state.catalogue.frame.columns}
        fields.update({str(k): v for k, v in attributes.items()})
        if not text:
            # the description's text columns sent as attributes make the text, as in the catalogue
            described = [c for c in split_list(state.config.data.item_columns.get("text")) if c in attributes]
            text = join_text(pd.DataFrame([attributes]), described)[0] if described else None
            fields["text"] = text
        if text:
            for col in list(fields) + ["text"]:
                if col in DESCRIPTION_COLUMNS and not fields.get(col):
                    fields[col] = text
            if not fields.get("title"):
                fields["title"] = attributes.get("title") or ""
        fields["image_path"] = str(image_file) if image_file is not None else None
        return fields

    def _save_upload(self, data: bytes) -> Path:
        """Uploaded image bytes go to a server-owned folder, named by content hash (never by the client)."""
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        path = self.upload_dir / (hashlib.sha256(data).hexdigest()[:32] + ".img")
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return path

