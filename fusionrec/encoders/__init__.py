"""Modality encoders and the on-disk feature store.

Public API::

    from fusionrec.encoders import ensure_features, encode_dataset, build_encoder
    # what train/ablate do: the description's encoders, reusing the feature store, encoding what is missing
    dataset, records = ensure_features(dataset, cfg.data)        # records: encoder id, params, content hash
    report = encode_dataset(dataset, ["minilm", "efficientnet-lite0"], store_dir="/work/cache/features")
    dataset.modalities["text"], dataset.modalities["image"]      # FeatureModality with masks
    print(report.summary()); report.issues_frame()               # per-item problems

Heavy libraries (torch, sentence-transformers, Pillow, librosa) are imported only
when an encoder actually needs them.
"""
from fusionrec.encoders.base import (
    Encoder,
    EncoderInfo,
    ItemInput,
    ItemIssue,
    ItemProblem,
    content_hash,
)
from fusionrec.encoders.ensure import (
    default_store_dir,
    ensure_features,
    feature_records,
)
from fusionrec.encoders.pipeline import (
    EncodeReport,
    ModalityReport,
    encode_dataset,
    encode_items,
)
from fusionrec.encoders.registry import (
    DEFAULT_ENCODERS,
    available_encoders,
    build_encoder,
    build_encoders,
    default_params,
    register,
)
from fusionrec.encoders.store import FeatureStore

__all__ = [
    "DEFAULT_ENCODERS", "EncodeReport", "Encoder", "EncoderInfo", "FeatureStore", "ItemInput", "ItemIssue",
    "ItemProblem", "ModalityReport", "available_encoders", "build_encoder", "build_encoders", "content_hash", "default_params",
    "default_store_dir", "encode_dataset", "encode_items", "ensure_features", "feature_records", "register",
]
