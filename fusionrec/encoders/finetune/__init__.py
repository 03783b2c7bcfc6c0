"""Fine-tuning the encoders with the recommender's loss.

Text: full, LoRA (peft) or a cached side adapter (:mod:`fusionrec.encoders.finetune.tower`).
Image: the last EfficientNet blocks, full or LoRA, over cached feature maps
(:mod:`fusionrec.encoders.finetune.image_tower`). See docs/guide/finetune.md.
"""
from fusionrec.encoders.finetune.params import (
    IMAGE_TUNE_MODES,
    TUNE_MODES,
    ImageTuneParams,
    TextTuneParams,
)

__all__ = ["IMAGE_TUNE_MODES", "TUNE_MODES", "ImageTower", "ImageTuneParams", "TextTower", "TextTuneParams",
           "build_image_tower", "build_text_tower"]


def __getattr__(name: str):  # torch-free import of the params for configuration checks
    if name in ("TextTower", "build_text_tower"):
        from fusionrec.encoders.finetune import tower

        return getattr(tower, name)
    if name in ("ImageTower", "build_image_tower"):
        from fusionrec.encoders.finetune import image_tower

        return getattr(image_tower, name)
    raise AttributeError(name)
