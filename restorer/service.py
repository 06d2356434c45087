"""Assembling a ready pipeline from settings made at the edge (CLI or app)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from restorer.pipeline import Pipeline
from restorer.planner import AutoMethods
from restorer.registry import default_registry
from restorer.weights import WeightStore, default_manifest_path, load_manifest

__all__ = ["ServiceConfig", "build_pipeline", "build_store"]


@dataclass(frozen=True)
class ServiceConfig:
    """Where weights live and whether the network may be used; built once at the edge."""

    manifest: Path = default_manifest_path()
    weights_dir: Path = default_manifest_path().parent
    cache_dir: Path | None = None
    offline: bool = False


def build_store(config: ServiceConfig) -> WeightStore:
    """The weight store described by ``config`` (no file is read or fetched yet)."""
    return WeightStore(load_manifest(config.manifest), bundled_dir=config.weights_dir,
                       cache_dir=config.cache_dir, offline=config.offline)


def build_pipeline(config: ServiceConfig = ServiceConfig()) -> Pipeline:
    """A pipeline over the default registry; stages whose weights are absent are unavailable."""
    store = build_store(config)
    versions = {e.id: f"{e.repo_id}@{e.revision} sha256:{e.sha256[:12]}" for e in store.manifest}
    registry = default_registry(weight_check=store.is_available)
    return Pipeline(registry, auto=AutoMethods(), weight_versions=versions)
