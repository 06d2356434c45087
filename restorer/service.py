"""Assembling a ready pipeline from settings made at the edge (CLI or app)."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from restorer.backends import DEVICE_HELP, check_device_choice
from restorer.errors import RestorerError
from restorer.pipeline import Pipeline
from restorer.planner import AutoMethods
from restorer.registry import default_registry
from restorer.weights import WeightStore, default_manifest_path, load_manifest

__all__ = ["DEVICE_ENV", "ServiceConfig", "build_pipeline", "build_store"]

log = logging.getLogger(__name__)

DEVICE_ENV = "RESTORER_DEVICE"
"""Environment variable that forces where torch stages run (see ``ServiceConfig.device``)."""

FACE_STAGE = "face.gfpgan"


def _device_from_env() -> str:
    return os.environ.get(DEVICE_ENV, "auto")


@dataclass(frozen=True)
class ServiceConfig:
    """Where weights live, whether the network may be used, and where torch stages run.

    Built once at the edge. ``device`` defaults to the ``RESTORER_DEVICE`` environment
    variable, else "auto" (CUDA when present, else CPU).
    """

    manifest: Path = default_manifest_path()
    weights_dir: Path = default_manifest_path().parent
    cache_dir: Path | None = None
    offline: bool = False
    device: str = field(default_factory=_device_from_env)

    def __post_init__(self) -> None:
        try:
            check_device_choice(self.device)
        except RestorerError:
            raise RestorerError(f"unknown device '{self.device}' (from --device or {DEVICE_ENV}): "
                                f"use {DEVICE_HELP}") from None


def build_store(config: ServiceConfig) -> WeightStore:
    """The weight store described by ``config`` (no file is read or fetched yet)."""
    return WeightStore(load_manifest(config.manifest), bundled_dir=config.weights_dir,
                       cache_dir=config.cache_dir, offline=config.offline)


def build_pipeline(config: ServiceConfig | None = None) -> Pipeline:
    """A pipeline over the default registry; stages whose weights are absent are unavailable.

    Auto mode restores faces when the face stage's weights are present and verified.
    """
    config = ServiceConfig() if config is None else config
    store = build_store(config)
    versions = {e.id: f"{e.repo_id}@{e.revision} sha256:{e.sha256[:12]}" for e in store.manifest}
    registry = default_registry(weight_check=store.is_available,
                                weight_path=functools.partial(store.resolve, download=False),
                                device=config.device)
    missing = registry.missing_weights(FACE_STAGE)
    if missing:
        log.info("Auto mode will not restore faces: weights %s are not available here",
                 ", ".join(missing))
    auto = AutoMethods(face=None if missing else FACE_STAGE)
    return Pipeline(registry, auto=auto, weight_versions=versions)
