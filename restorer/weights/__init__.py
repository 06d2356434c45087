"""Versioned, verified weight files: the manifest, local resolution, Hub download, lock and publish.

Every weight file restorer may load is listed in ``weights/manifest.json`` with its Hub location
(``repo_id``, ``filename``, ``revision``) and its exact bytes (``size``, ``sha256``). The parts:

- :mod:`restorer.weights.manifest`: the manifest's entries, reading and writing it, hashing and
  loading verified files;
- :mod:`restorer.weights.store`: :class:`WeightStore` finds a file locally (bundled folder first,
  then the Hugging Face cache folder), downloads it only when it is absent, and checks size and
  sha256 before the file is first used;
- :mod:`restorer.weights.hub`: download, ``weights lock`` and ``weights publish``; the only
  module that imports ``huggingface_hub``, lazily.

Nothing here touches the network at import time or in a constructor. See ``docs/weights.md``.
"""

from restorer.weights.hub import build_model_card, lock_manifest, publish_bundled, stage_publish
from restorer.weights.manifest import (FORMAT_VERSION, PULL_COMMAND, Manifest, WeightEntry,
                                       default_manifest_path, load_manifest, load_safetensors,
                                       load_torch_checkpoint, sha256_file)
from restorer.weights.store import (STAMPS_FILENAME, Downloader, VerifyResult, WeightStatus,
                                    WeightStore, build_store)

__all__ = [
    "FORMAT_VERSION",
    "PULL_COMMAND",
    "STAMPS_FILENAME",
    "Downloader",
    "Manifest",
    "VerifyResult",
    "WeightEntry",
    "WeightStatus",
    "WeightStore",
    "build_model_card",
    "build_store",
    "default_manifest_path",
    "load_manifest",
    "load_safetensors",
    "load_torch_checkpoint",
    "lock_manifest",
    "publish_bundled",
    "sha256_file",
    "stage_publish",
]
