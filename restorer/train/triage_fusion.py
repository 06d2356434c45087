"""Fitting the triage stage's fusion: two logistic regressions that combine the network's
answers with the detector's and the blur measure's (``python -m restorer.train.triage --fusion``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from safetensors.torch import save

from restorer import files
from restorer.stages.triage_net import (Fusion, Measurement, Recipe, TriageNetwork, fitted_on,
                                        fuse, fusion_inputs)
from restorer.train.triage_data import draw_samples, evaluate, source_photos

__all__ = ["measure_samples", "fit_logistic", "fit_fusion", "save_fusion"]


def measure_samples(network: TriageNetwork, paths: Sequence[Path], count: int, seed: int,
                    recipe: Recipe) -> tuple[list[Measurement], np.ndarray]:
    """:class:`Measurement` (taken as ``recipe`` says) of ``count`` seeded samples (labels
    balanced) and their targets float32 (N, 2) (blurred, cracked)."""
    samples = list(draw_samples(paths, count, seed))
    return ([network.measure(s.image, recipe) for s in samples],
            np.array([s.targets for s in samples], np.float32))


def fit_logistic(inputs: np.ndarray, labels: np.ndarray,
                 l2: float = 1e-2) -> tuple[np.ndarray, float]:
    """Weights (K,) and bias of an L2-penalised logistic regression of float (N, K) ``inputs``
    on 0/1 ``labels`` (N,), by Newton's method."""
    x = np.hstack([inputs, np.ones((len(inputs), 1))]).astype(np.float64)
    penalty = np.diag([l2] * inputs.shape[1] + [0.0])
    w = np.zeros(x.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        step = np.linalg.solve(x.T @ (x * (p * (1 - p))[:, None]) + penalty,
                               x.T @ (p - labels) + penalty @ w)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def _fusion_inputs(measured: Sequence[Measurement]) -> tuple[np.ndarray, np.ndarray]:
    """Blur inputs (N, 3) and crack inputs (N, 4) of :func:`fuse`."""
    rows = [fusion_inputs(m) for m in measured]
    return np.array([b for b, _ in rows]), np.array([c for _, c in rows])


def fit_fusion(network: TriageNetwork, data: Path, count: int, val_count: int,
               seed: int) -> tuple[Fusion, dict[str, Any]]:
    """Fit the triage fusion on ``count`` samples of training photos with fresh damage (seed
    ``seed``); report the network alone and fused on ``val_count`` held-out samples."""
    started = time.perf_counter()
    recipe = Recipe()
    measured, targets = measure_samples(network, source_photos(data, "train"), count, seed,
                                        recipe)
    blur_in, crack_in = _fusion_inputs(measured)
    blur_w, blur_b = fit_logistic(blur_in, targets[:, 0])
    crack_w, crack_b = fit_logistic(crack_in, targets[:, 1])
    fusion = Fusion(blur_w, blur_b, crack_w, crack_b, recipe)
    held, held_targets = measure_samples(network, source_photos(data, "heldout"), val_count,
                                         seed + 1, recipe)
    alone = np.array([[m.p_blur, m.p_crack] for m in held])
    fused = np.array([fuse(fusion, m) for m in held])
    report = {"fit_count": count, "fit_seed": seed, "heldout_count": val_count,
              "heldout_seed": seed + 1, "seconds": round(time.perf_counter() - started),
              "recipe": recipe.metadata(),
              "blur": {"weight": blur_w.tolist(), "bias": blur_b},
              "crack": {"weight": crack_w.tolist(), "bias": crack_b},
              "heldout_network_alone": evaluate(alone, held_targets),
              "heldout_fused": evaluate(fused, held_targets)}
    return fusion, report


def save_fusion(fusion: Fusion, path: Path, segnet_path: Path, model_path: Path) -> None:
    """Write ``fusion`` as safetensors, recording the SegNet and network files it was fitted
    on (their sha256) and its :class:`~restorer.stages.triage_net.Recipe`."""
    tensors = {"blur.weight": torch.tensor(fusion.blur_weight, dtype=torch.float32),
               "blur.bias": torch.tensor([fusion.blur_bias], dtype=torch.float32),
               "crack.weight": torch.tensor(fusion.crack_weight, dtype=torch.float32),
               "crack.bias": torch.tensor([fusion.crack_bias], dtype=torch.float32)}
    files.write_bytes(path, save(tensors, metadata=fitted_on(segnet_path, model_path)
                                 | fusion.recipe.metadata()))
