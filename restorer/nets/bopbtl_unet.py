"""The scratch-detection U-Net of "Bringing Old Photos Back to Life" (Wan et al., CVPR 2020).

Written here from the architecture in the authors' repository (microsoft/Bringing-Old-Photos-
Back-to-Life, MIT, ``Global/detection_models/networks.py``: ``UNet(in_channels=1,
out_channels=1, depth=4, conv_num=2, wf=6, padding=True, batch_norm=True, up_mode="upsample",
antialiasing=True)``), with module names chosen so that the state dict keys are exactly those of
the published ``FT_Epoch_latest.pt`` (``checkpoint["model_state"]``):

- ``first``: reflect-pad 3, 7 x 7 convolution to ``2**wf`` channels, LeakyReLU(0.2);
- ``down_sample[i]``: reflect-pad 1, 3 x 3 convolution, BatchNorm, LeakyReLU, then an
  anti-aliased stride-2 blur (Zhang 2019; its [1, 2, 1]^2 / 16 filter is the buffer ``filt``);
- ``down_path[i]``: two (reflect-pad 1, 3 x 3 convolution, BatchNorm, LeakyReLU), doubling the
  channels;
- ``up_path[j]``: bilinear x2, reflect-pad 1, 3 x 3 convolution halving the channels, joined
  with the skip connection, then two convolution blocks;
- ``last``: reflect-pad 1, 3 x 3 convolution to one channel (a scratch logit).

Input: grayscale (N, 1, H, W) in [-1, 1] (the authors normalise with mean 0.5, std 0.5), H and W
multiples of 2**depth (16). Output: logits (N, 1, H, W); the authors threshold sigmoid >= 0.4.
Only imported when the stage is built (torch is a heavy import).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ScratchUNet", "SIZE_MULTIPLE", "unet_shape"]

SIZE_MULTIPLE = 16
"""Input sides must be multiples of this (four stride-2 steps)."""


class _Downsample(nn.Module):
    """Anti-aliased stride-2 subsampling: reflect-pad 1, depthwise [1, 2, 1]^2 / 16 blur."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("filt", (kernel / kernel.sum())[None, None].repeat(channels, 1, 1, 1))
        self.pad = nn.ReflectionPad2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.pad(x), self.filt, stride=2, groups=x.shape[1])


def _conv_bn(inputs: int, outputs: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d(1), nn.Conv2d(inputs, outputs, kernel_size=3),
            nn.BatchNorm2d(outputs), nn.LeakyReLU(0.2, True)]


class _ConvBlock(nn.Module):
    """Two (pad, 3 x 3 conv, BatchNorm, LeakyReLU); keys ``block.{1,2,5,6}``."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.block = nn.Sequential(*_conv_bn(inputs, outputs), *_conv_bn(outputs, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class _UpBlock(nn.Module):
    """Bilinear x2 and a 3 x 3 conv (``up.2``), concatenated with the skip, two conv blocks."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.up = nn.Sequential(nn.Upsample(mode="bilinear", scale_factor=2, align_corners=False),
                                nn.ReflectionPad2d(1), nn.Conv2d(inputs, outputs, kernel_size=3))
        self.conv_block = _ConvBlock(inputs, outputs)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up(x)
        dy, dx = (skip.shape[2] - up.shape[2]) // 2, (skip.shape[3] - up.shape[3]) // 2
        skip = skip[:, :, dy:dy + up.shape[2], dx:dx + up.shape[3]]
        return self.conv_block(torch.cat([up, skip], 1))


class ScratchUNet(nn.Module):
    """Grayscale (N, in_channels, H, W) in [-1, 1] -> scratch logits (N, 1, H, W).

    ``wf``: the first level has ``2**wf`` channels; ``depth``: stride-2 levels. The defaults are
    the published detector's (37.6 M parameters); tests build narrower ones.
    """

    def __init__(self, *, in_channels: int = 1, wf: int = 6, depth: int = 4) -> None:
        super().__init__()
        self.first = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_channels, 2 ** wf, 7),
                                   nn.LeakyReLU(0.2, True))
        channels = 2 ** wf
        self.down_sample = nn.ModuleList()
        self.down_path = nn.ModuleList()
        for level in range(depth):
            self.down_sample.append(nn.Sequential(*_conv_bn(channels, channels),
                                                  _Downsample(channels)))
            self.down_path.append(_ConvBlock(channels, 2 ** (wf + level + 1)))
            channels = 2 ** (wf + level + 1)
        self.up_path = nn.ModuleList()
        for level in reversed(range(depth)):
            self.up_path.append(_UpBlock(channels, 2 ** (wf + level)))
            channels = 2 ** (wf + level)
        self.last = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels, 1, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(x)
        skips = []
        for down, block in zip(self.down_sample, self.down_path):
            skips.append(x)
            x = block(down(x))
        for up, skip in zip(self.up_path, reversed(skips)):
            x = up(x, skip)
        return self.last(x)


def unet_shape(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """``ScratchUNet`` arguments (in_channels, wf, depth) that fit ``state``; KeyError or
    ValueError when it is not this architecture's state dict."""
    first = state["first.1.weight"]
    width = int(first.shape[0])
    if width < 2 or width & (width - 1):
        raise ValueError(f"first layer has {width} channels, not a power of two")
    depth = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("down_path."))
    return {"in_channels": int(first.shape[1]), "wf": width.bit_length() - 1, "depth": depth}
