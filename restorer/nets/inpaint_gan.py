"""The inpainting networks of seed paper 000: a reconstruction network and two critics.

Layer strings follow the paper: ``C64`` a 3x3 convolution with 64 filters, ``K5`` a 5x5
kernel, ``S2`` stride 2, ``D2`` dilation 2, ``MP`` 2x2 max-pooling, ``US`` 2x nearest
up-sampling, ``FC1`` one fully connected output. Every convolution but the last is followed
by ELU. ``width`` scales all filter counts (the paper's networks are ``width=64``: 64/128/256).

Reconstruction network (input: the photo pre-filled by Navier-Stokes, plus the mask)::

    C64-C64-MP-C64-C128-MP-C128-C128-MP-C256-C256D2-C256D4-C256D8-C256-US-C128-C128-US-C128-C64
    -US-C64-C64-C3, sigmoid

One deviation from the paper: the sigmoid is applied to ``logit(pre-fill) + C3``, so the
network learns a correction to the Navier-Stokes fill (the paper applies the sigmoid to ``C3``
alone, so its network must also learn to reproduce the pre-fill). (``C3`` keeps PyTorch's
default initialisation: a zero start would leave the earlier layers' gradients below Adam's
epsilon for hundreds of steps.)

Global critic (whole crop): C64K5S2-MP-C128K5S2-MP-C256K5S2-MP-C256K3-FC1.
Local critic (patch around the hole): C64K5S2-MP-C128K5S2-MP-C256K3-MP-C256K3-FC1.
Both return logits (the paper's sigmoid is folded into the binary cross-entropy).

Tensors are NCHW float32: images in [0, 1], masks 1.0 = hole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

__all__ = ["GENERATOR_LAYERS", "GLOBAL_CRITIC_LAYERS", "LOCAL_CRITIC_LAYERS", "PREFILL_EPS",
           "Critic", "InpaintArch", "Reconstructor", "build_layers", "load_reconstructor",
           "save_reconstructor"]

GENERATOR_LAYERS = ("C64-C64-MP-C64-C128-MP-C128-C128-MP-C256-C256D2-C256D4-C256D8-C256-US-"
                    "C128-C128-US-C128-C64-US-C64-C64-C3")
GLOBAL_CRITIC_LAYERS = "C64K5S2-MP-C128K5S2-MP-C256K5S2-MP-C256K3-FC1"
LOCAL_CRITIC_LAYERS = "C64K5S2-MP-C128K5S2-MP-C256K3-MP-C256K3-FC1"

#: Pre-fill values are clamped to [eps, 1 - eps] before the logit.
PREFILL_EPS = 1e-3
_CONV = re.compile(r"C(\d+)(?:K(\d+))?(?:S(\d+))?(?:D(\d+))?")


@dataclass(frozen=True)
class InpaintArch:
    """Sizes of the three networks.

    ``width``: filters of the first layer (the paper: 64; all others scale with it).
    ``crop``: side of the training crops (what the global critic sees); ``local``: side of the
    patch around the hole that the local critic sees. The reconstruction network takes any
    size that is a multiple of 8.
    """

    width: int = 64
    crop: int = 128
    local: int = 64


def build_layers(spec: str, in_channels: int, width: int) -> tuple[nn.Sequential, int]:
    """``nn.Sequential`` for a layer string (``FC`` tokens skipped) and its output channels.

    Filter counts scale by ``width / 64``, except a last 3-filter layer (the RGB output),
    which also gets no ELU.
    """
    layers: list[nn.Module] = []
    channels = in_channels
    tokens = [t for t in spec.split("-") if not t.startswith("FC")]
    for index, token in enumerate(tokens):
        if token == "MP":
            layers.append(nn.MaxPool2d(2))
            continue
        if token == "US":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            continue
        match = _CONV.fullmatch(token)
        if match is None:
            raise ValueError(f"unknown layer token '{token}' in '{spec}'")
        filters, kernel, stride, dilation = (int(v) if v else d for v, d in
                                             zip(match.groups(), (0, 3, 1, 1)))
        rgb_out = index == len(tokens) - 1 and filters == 3
        out = filters if rgb_out else max(1, filters * width // 64)
        layers.append(nn.Conv2d(channels, out, kernel, stride=stride,
                                padding=dilation * (kernel // 2), dilation=dilation))
        if not rgb_out:
            layers.append(nn.ELU())
        channels = out
    return nn.Sequential(*layers), channels


class Reconstructor(nn.Module):
    """The reconstruction network: (prefill (N, 3, H, W), mask (N, 1, H, W)) -> (N, 3, H, W).

    ``prefill`` in [0, 1] is the photo with its holes filled by Navier-Stokes; ``mask`` is 1.0
    in the holes. H and W must be multiples of 8. The output in (0, 1) covers the whole input;
    callers keep it only inside the holes.
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.body, _ = build_layers(GENERATOR_LAYERS, 4, width)

    def forward(self, prefill: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        height, width = prefill.shape[-2:]
        if height % 8 or width % 8:
            raise ValueError(f"input must be a multiple of 8 px, got {height}x{width}")
        x = torch.cat([prefill * 2.0 - 1.0, mask], dim=1)
        base = torch.logit(prefill.clamp(PREFILL_EPS, 1.0 - PREFILL_EPS))
        return torch.sigmoid(base + self.body(x))


class Critic(nn.Module):
    """A critic: image (N, 3, size, size) in [0, 1] -> logit (N,) that the image is real."""

    def __init__(self, layers: str, size: int, width: int = 64) -> None:
        super().__init__()
        self.features, channels = build_layers(layers, 3, width)
        with torch.no_grad():
            cells = self.features(torch.zeros(1, 3, size, size)).shape[-2:].numel()
        self.fc = nn.Linear(channels * cells, 1)
        self.size = size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[-2:] != (self.size, self.size):
            raise ValueError(f"critic expects {self.size}x{self.size} px, got "
                             f"{tuple(image.shape[-2:])}")
        return self.fc(self.features(image * 2.0 - 1.0).flatten(1)).squeeze(1)


def save_reconstructor(generator: Reconstructor, path: Path, metadata: dict[str, str]) -> None:
    """Write ``generator``'s weights as fp16 safetensors with ``metadata`` (strings)."""
    from safetensors.torch import save

    from restorer import files

    tensors = {k: v.detach().to("cpu", torch.float16).contiguous()
               for k, v in generator.state_dict().items()}
    files.write_bytes(path, save(tensors, metadata={**metadata, "layers": GENERATOR_LAYERS}))


def load_reconstructor(tensors: dict[str, torch.Tensor]) -> Reconstructor:
    """A float32 :class:`Reconstructor` from a state dict (any float dtype), width inferred.

    Raises ``ValueError`` naming the problem when the tensors do not fit the architecture.
    """
    first = tensors.get("body.0.weight")
    if first is None or first.ndim != 4 or tuple(first.shape[1:]) != (4, 3, 3):
        raise ValueError("not a reconstruction network: 'body.0.weight' of shape "
                         "(width, 4, 3, 3) is missing")
    generator = Reconstructor(int(first.shape[0]))
    try:
        generator.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    except RuntimeError as error:
        raise ValueError(str(error).splitlines()[0]) from None
    return generator.eval()
