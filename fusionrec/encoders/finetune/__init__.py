"""Fine-tuning the text encoder with the recommender's loss: full, LoRA (peft) or a cached side adapter.

See :mod:`fusionrec.encoders.finetune.tower` and docs/guide/finetune.md.
"""
from fusionrec.encoders.finetune.params import TUNE_MODES, TextTuneParams

__all__ = ["TUNE_MODES", "TextTower", "TextTuneParams", "build_text_tower"]


def __getattr__(name: str):  # torch-free import of the params for configuration checks
    if name in ("TextTower", "build_text_tower"):
        from fusionrec.encoders.finetune import tower

        return getattr(tower, name)
    raise AttributeError(name)
