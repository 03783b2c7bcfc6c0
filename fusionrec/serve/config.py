"""Serving configuration: one pydantic model, read from YAML and overridable from the CLI.

Defaults live in ``fusionrec/configs/serve.yaml``; a user file (``fusionrec serve
--config serve.yaml``) and command-line flags override them. API keys are never
part of this file: they come from the environment variable named by
``api_key_env`` or from the file named by ``api_key_file``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from fusionrec.config import deep_merge, load_yaml_resource
from fusionrec.errors import UserError


class IndexConfig(BaseModel):
    """How the item index is built (see :mod:`fusionrec.serve.index`)."""

    model_config = ConfigDict(extra="forbid")

    # auto: exact (flat) search up to ``exact_threshold`` items, ``large_kind`` above.
    kind: Literal["auto", "flat", "hnsw", "ivf"] = "auto"
    exact_threshold: int = 50_000
    large_kind: Literal["hnsw", "ivf"] = "hnsw"
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 128   # 1M items: recall@10 0.970 at 128 vs 0.945 at 64 (bench/ann_million.py)
    ivf_nlist: int = 0          # 0: about sqrt(n)
    ivf_nprobe: int = 32
    # when filters/seen items leave fewer than this share of the catalogue, skip
    # the ANN index and rank the allowed subset exactly (the ANN would have to
    # over-fetch most of the catalogue anyway).
    exact_subset_share: float = 0.05
    # ... and always when at most this many rows are allowed: scoring 200k x 64 exactly is a
    # few milliseconds, while over-fetching from HNSW loses recall on selective filters
    # (measured in tests/serve/test_index.py: ~0.94 of the filtered top-10 at 50% allowed,
    # ~0.5 at 5%), so the ANN path is kept for broad filters on very large catalogues only
    exact_subset_max: int = 200_000
    overfetch: float = 2.0        # ANN candidates fetched = (k + excluded) / allowed share * overfetch
    max_overfetch_rounds: int = 3


class OnlineConfig(BaseModel):
    """How accepted events move a user's vector (see :mod:`fusionrec.serve.online`)."""

    model_config = ConfigDict(extra="forbid")

    # event type -> weight; types not listed are rejected with 422 naming the allowed ones.
    event_weights: dict[str, float] = Field(
        default_factory=lambda: {"view": 0.5, "click": 1.0, "like": 1.5, "cart": 1.5, "purchase": 2.0, "rating": 1.0}
    )
    half_life_events: float = 20.0  # recency: an event's weight halves every this many newer events
    max_blend: float = 0.8          # most the online aggregate can replace of a trained user vector
    blend_events: float = 5.0       # events at which the blend reaches half of max_blend
    max_history: int = 200          # online events kept in memory per user

    @field_validator("event_weights")
    @classmethod
    def _positive_weights(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: w for k, w in v.items() if not w > 0}
        if bad:
            # the online vector is a weighted mean: a zero or negative total weight has no meaning
            raise ValueError(f"event weights must be > 0, got {bad}")
        return v


class RateLimitConfig(BaseModel):
    """Token buckets: requests per second per key (by its role), per client address without a key.

    A bucket holds ``rate * burst_seconds`` tokens (at least 1); 0 switches a limit off. A request
    over its limit gets 429 with ``Retry-After``. ``failed_auth`` throttles wrong-key guesses per address.
    """

    model_config = ConfigDict(extra="forbid")

    read: float = Field(1000.0, ge=0)
    write: float = Field(200.0, ge=0)
    admin: float = Field(10.0, ge=0)
    anonymous: float = Field(100.0, ge=0)     # public reads (public_reads: true), per client address
    failed_auth: float = Field(1.0, ge=0)     # wrong keys, per client address
    burst_seconds: float = Field(10.0, gt=0)


class ServeConfig(BaseModel):
    """Everything ``fusionrec serve`` needs besides the model directory."""

    model_config = ConfigDict(extra="forbid")

    model_dir: str | None = None
    db_path: str | None = None       # None: <model_dir>/serve.sqlite3; postgresql://... = store shared by replicas
    replica_sync_interval: float = Field(0.5, gt=0)  # PostgreSQL store: poll at least this often (s)
    media_root: str | None = None    # None: the dataset root (image paths must stay inside it)
    host: str = "127.0.0.1"
    port: int = 8000
    api_key_env: str = "FUSIONREC_API_KEYS"   # comma-separated keys
    api_key_file: str | None = None            # one key per line
    # reads need a key with the read (or a higher) role unless the operator makes them public
    public_reads: bool = False
    require_key_for_reads: bool = False  # kept for old config files: reads need a key anyway unless public_reads
    allow_no_keys: bool = False  # start without any key: keyed endpoints then refuse every request
    rate_limits: RateLimitConfig = Field(default_factory=RateLimitConfig)
    max_body_bytes: int = 8 * 1024 * 1024
    max_k: int = 1000
    max_events_per_request: int = 10_000
    max_items_per_request: int = 256
    # what a key holder can make the server hold or decode (each refusal is a 4xx naming the key)
    max_online_users: int = Field(100_000, ge=1)      # users with online events held in memory (LRU)
    max_attributes_per_item: int = Field(64, ge=1)
    max_attribute_columns: int = Field(512, ge=1)     # distinct attribute keys over the whole catalogue
    max_image_pixels: int = Field(40_000_000, ge=1)   # read from the image header, before decoding
    max_image_aspect: float = Field(20.0, ge=1)       # longest side / shortest side
    max_media_file_bytes: int = Field(20 * 1024 * 1024, ge=1)  # image/audio files read from the media root
    text_encoder: str | None = "default"   # None disables content encoding (no POST /items, no text queries)
    image_encoder: str | None = "default"
    ridge_alpha: float = 1.0
    retrain_every_seconds: float = 0.0      # 0: only on demand (POST /admin/retrain)
    retrain_overrides: list[str] = Field(default_factory=list)  # --set style overrides for the retrain run
    # retrained versions: <versions_dir>/v2, v3, ... (default: <db folder>/<db name>-models), CURRENT names
    # the published one; the newest keep_versions are kept
    versions_dir: str | None = None
    keep_versions: int = Field(3, ge=1)
    use_retrained: bool = False          # serve the latest retrained version of --model instead of --model
    retrain_after_forget: bool = True    # DELETE /users starts a retrain so no served model keeps the user
    index: IndexConfig = Field(default_factory=IndexConfig)
    online: OnlineConfig = Field(default_factory=OnlineConfig)

    @field_validator("max_k")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"max_k must be >= 1, got {v}")
        return v


def load_serve_config(config_file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ServeConfig:
    """Packaged defaults <- user YAML file <- explicit overrides (e.g. CLI flags)."""
    base = load_yaml_resource("serve.yaml", missing_ok=True)
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise UserError(f"serve config {path} does not exist", "--config", "pass the path of a YAML file")
        base = deep_merge(base, yaml.safe_load(path.read_text()) or {})
    base = deep_merge(base, {k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return ServeConfig.model_validate(base)
    except Exception as err:  # pydantic.ValidationError: show which key is wrong
        raise UserError(f"invalid serve configuration: {err}", str(config_file or "flags"),
                        "fix the named key; see fusionrec/configs/serve.yaml for every option") from err
