"""The triage network's "compact" architecture in torch, read straight from its ``.keras`` file.

The network is trained with Keras (``python -m restorer.train.triage``) and shipped as a
``.keras`` file (a zip of ``config.json`` and ``model.weights.h5``). Running it through Keras
costs a single-photo run most of its start (Keras on torch imports torch's compiler stack), so
the stage runs this module instead: the same layers, the same weights, the same answers (a test
checks them against Keras to 1e-5), on whichever device the model runtime picks.

:func:`read_keras_compact` checks the file's layer list against the compact architecture (the
one ``restorer.train.triage.build_model("compact")`` builds) and raises ValueError for any other,
so a file of another architecture goes to Keras instead. Views go in as float32
(B, 3, S, S) in [0, 1]; :meth:`CompactTriage.forward` takes (N, K, 3, S, S), K views a photo, and
gives (N, 2) probabilities (blur, crack).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["CompactTriage", "read_keras_compact"]

_STEM = 16
#: (width, then max-pooled) of the separable blocks after the stem, as build_model makes them.
_BLOCKS = ((32, True), (64, True), (96, True), (128, False))
_HIDDEN = 64
_EPSILON = 1e-3  # Keras' BatchNormalization default, checked against the file


def _bn(width: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(width, eps=_EPSILON)


class CompactTriage(nn.Module):
    """Per-view backbone (3x3 conv, four separable 3x3 blocks, global max and mean pooling),
    views pooled by max and mean, two dense layers: (N, K, 3, S, S) [0, 1] -> (N, 2) [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, _STEM, 3, padding=1, bias=False), _bn(_STEM),
                                   nn.ReLU()]
        width = _STEM
        for out, pool in _BLOCKS:
            layers += [nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False),
                       nn.Conv2d(width, out, 1, bias=False), _bn(out), nn.ReLU()]
            if pool:
                layers.append(nn.MaxPool2d(2))
            width = out
        self.backbone = nn.Sequential(*layers)
        self.hidden = nn.Linear(4 * width, _HIDDEN)
        self.out = nn.Linear(_HIDDEN, 2)

    def features(self, views: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) views -> (B, 2 * 128) features (global max, then global mean)."""
        x = self.backbone(views)
        return torch.cat([x.amax(dim=(2, 3)), x.mean(dim=(2, 3))], dim=1)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """(N, K, F) per-view features -> (N, 2) probabilities (blur, crack)."""
        pooled = torch.cat([features.amax(dim=1), features.mean(dim=1)], dim=1)
        return torch.sigmoid(self.out(torch.relu(self.hidden(pooled))))

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        count, per_photo = views.shape[:2]
        features = self.features(views.flatten(0, 1))
        return self.head(features.reshape(count, per_photo, -1))


def _layers(config: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(outer, backbone) layer configs of a saved triage model; ValueError if not that shape."""
    outer = config["config"]["layers"]
    distributed = [layer for layer in outer if layer["class_name"] == "TimeDistributed"]
    if len(distributed) != 1:
        raise ValueError("not a per-view triage model (no single TimeDistributed backbone)")
    return outer, distributed[0]["config"]["layer"]["config"]["layers"]


def _expected_backbone() -> list[tuple[str, Any]]:
    names: list[tuple[str, Any]] = [("Conv2D", _STEM), ("BatchNormalization", None),
                                    ("ReLU", None)]
    for width, pool in _BLOCKS:
        names += [("SeparableConv2D", width), ("BatchNormalization", None), ("ReLU", None)]
        if pool:
            names.append(("MaxPooling2D", None))
    return names + [("GlobalMaxPooling2D", None), ("GlobalAveragePooling2D", None),
                    ("Concatenate", None)]


_OUTER = [("TimeDistributed", None), ("GlobalMaxPooling1D", None),
          ("GlobalAveragePooling1D", None), ("Concatenate", None), ("Dense", _HIDDEN),
          ("Dropout", None), ("Dense", 2)]


def _check_architecture(config: dict[str, Any]) -> None:
    """ValueError unless ``config`` (the file's config.json) is the compact architecture."""
    outer, backbone = _layers(config)

    def shape(layers: list[dict[str, Any]]) -> list[tuple[str, Any]]:
        found = []
        for layer in layers:
            kind, cfg = layer["class_name"], layer["config"]
            if kind == "InputLayer":
                continue
            size = cfg.get("filters", cfg.get("units"))
            found.append((kind, size))
            if kind in ("Conv2D", "SeparableConv2D") and (
                    tuple(cfg["kernel_size"]) != (3, 3) or cfg["padding"] != "same"
                    or tuple(cfg["strides"]) != (1, 1) or cfg["use_bias"]
                    or cfg["activation"] != "linear" or cfg.get("depth_multiplier", 1) != 1):
                raise ValueError(f"layer {cfg['name']} is not a bias-free 3x3 'same' convolution")
            if kind == "BatchNormalization" and (
                    abs(cfg["epsilon"] - _EPSILON) > 1e-12 or not cfg["center"]
                    or not cfg["scale"]):
                raise ValueError(f"layer {cfg['name']} is not a default batch normalisation")
            if kind == "MaxPooling2D" and (tuple(cfg["pool_size"]) != (2, 2)
                                           or tuple(cfg["strides"]) != (2, 2)
                                           or cfg["padding"] != "valid"):
                raise ValueError(f"layer {cfg['name']} is not a 2x2 max pooling")
            if kind == "Dense" and not cfg["use_bias"]:
                raise ValueError(f"layer {cfg['name']} has no bias")
        return found

    if shape(backbone) != _expected_backbone() or shape(outer) != _OUTER:
        raise ValueError("the file's layers are not the compact triage architecture")
    dense = [layer["config"]["activation"] for layer in outer if layer["class_name"] == "Dense"]
    if dense != ["relu", "sigmoid"]:
        raise ValueError(f"the dense layers' activations are {dense}, not relu then sigmoid")


def _tensor(weights: Any, name: str) -> torch.Tensor:
    return torch.from_numpy(weights[name][()].astype("float32"))


def _load_weights(model: CompactTriage, weights: Any) -> None:
    """Copy the Keras variables of ``weights`` (the open model.weights.h5) into ``model``."""
    inner = "layers/time_distributed/layer/layers"
    convs = [m for m in model.backbone if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.backbone if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        convs[0].weight.copy_(_tensor(weights, f"{inner}/conv2d/vars/0").permute(3, 2, 0, 1))
        for index in range(len(_BLOCKS)):
            suffix = f"_{index}" if index else ""
            depthwise, pointwise = convs[1 + 2 * index], convs[2 + 2 * index]
            base = f"{inner}/separable_conv2d{suffix}/vars"
            # Keras: depthwise (3, 3, C, 1), pointwise (1, 1, C, O);
            # torch: (C, 1, 3, 3), (O, C, 1, 1).
            depthwise.weight.copy_(_tensor(weights, f"{base}/0").permute(2, 3, 0, 1))
            pointwise.weight.copy_(_tensor(weights, f"{base}/1").permute(3, 2, 0, 1))
        for index, norm in enumerate(norms):
            base = f"{inner}/batch_normalization{f'_{index}' if index else ''}/vars"
            for slot, target in enumerate((norm.weight, norm.bias, norm.running_mean,
                                           norm.running_var)):
                target.copy_(_tensor(weights, f"{base}/{slot}"))
        for layer, name in ((model.hidden, "dense"), (model.out, "dense_1")):
            layer.weight.copy_(_tensor(weights, f"layers/{name}/vars/0").T)
            layer.bias.copy_(_tensor(weights, f"layers/{name}/vars/1"))


def read_keras_compact(path: Path) -> CompactTriage:
    """The compact triage network saved by Keras at ``path`` (``.keras``), in eval mode on the
    CPU. Raises ValueError when the file holds another architecture or misses a variable, and
    OSError when it cannot be read."""
    import h5py

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            data = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{Path(path).name} is not a saved Keras model ({exc})") from exc
    _check_architecture(config)
    model = CompactTriage()
    with h5py.File(io.BytesIO(data), "r") as weights:
        try:
            _load_weights(model, weights)
        except (KeyError, RuntimeError) as exc:  # a variable missing, or of another shape
            raise ValueError(f"{Path(path).name} does not hold the compact triage network's "
                             f"weights ({exc})") from exc
    return model.eval()
