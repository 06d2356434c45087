"""The Hugging Face Hub side of the weights: download, lock and publish.

The only restorer module that imports ``huggingface_hub`` (and its HTTP client), always inside
the function that needs it, so importing this module costs nothing. Tests point it at the
local server of ``tests/hub_server.py`` with ``endpoint=``.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from restorer.errors import WeightsError, WeightsIntegrityError, WeightsMissingError
from restorer.weights.manifest import (COMMIT_PATTERN, SHA256_PATTERN, Manifest, WeightEntry,
                                       first_line, missing_error, sha256_file)

if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from restorer.weights.store import Downloader

__all__ = ["build_model_card", "default_cache_dir", "fetch", "hf_download", "hub_api",
           "lock_manifest", "publish_bundled", "stage_publish"]

logger = logging.getLogger(__name__)

# Hub licence identifiers written as-is into model-card front matter; any other licence becomes "other".
_HUB_LICENCES = frozenset({"apache-2.0", "mit", "bsd-3-clause", "cc-by-4.0"})


def default_cache_dir() -> Path:
    """The Hub client's own default cache folder (``HF_HUB_CACHE`` as it read it)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hf_download(repo_id: str, filename: str, **options: Any) -> str:
    """``huggingface_hub.hf_hub_download`` (the default :class:`~restorer.weights.store.Downloader`)."""
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_id, filename, **options)


def hub_api(endpoint: str | None = None) -> HfApi:
    """A Hub API client for ``endpoint`` (None: ``HF_ENDPOINT`` or huggingface.co)."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint)


def _network_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a Hub call raises when the Hub refuses or the transfer breaks."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    return HfHubHTTPError, httpx2.TransportError, OSError


def fetch(downloader: Downloader, entry: WeightEntry, *, cache_dir: Path | None,
          endpoint: str | None) -> Path:
    """Download ``entry`` into the cache folder with ``downloader``; every failure becomes a
    :class:`WeightsError` (:class:`WeightsMissingError` when the Hub cannot be reached)."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    hub_refused, transport, _ = _network_errors()
    try:
        path = downloader(
            entry.repo_id,
            entry.filename,
            revision=entry.revision,
            cache_dir=cache_dir,
            local_files_only=False,
            endpoint=endpoint,
        )
    except LocalEntryNotFoundError:
        raise missing_error([entry], "the Hugging Face Hub could not be reached") from None
    except hub_refused as error:
        raise WeightsError(
            f"the Hub refused {entry.filename} from {entry.repo_id}@{entry.revision} "
            f"({type(error).__name__}: {first_line(error)}); check the manifest entry '{entry.id}'"
        ) from error
    except transport as error:
        raise missing_error([entry], f"the download was interrupted ({type(error).__name__})") from error
    except OSError as error:
        raise WeightsError(f"downloading {entry.label} failed: {first_line(error)}") from error
    return Path(path)


def lock_manifest(manifest: Manifest, *, api: HfApi | None = None,
                  endpoint: str | None = None) -> Manifest:
    """A copy of ``manifest`` whose branch/tag revisions are replaced by the commit ids they point to now.

    Needs network access through ``api`` (default: :func:`hub_api` of ``endpoint``). Checks that
    each file exists at the resolved commit. An entry without a sha256 also gets the sha256 and
    size the Hub reports for its file at that commit (its LFS object id, the hash of the content).
    """
    api = hub_api(endpoint) if api is None else api
    network_errors = _network_errors()
    resolved: dict[tuple[str, str], tuple[str, dict[str, Any] | None]] = {}
    changes: dict[str, dict[str, Any]] = {}
    for entry in manifest:
        if entry.is_pinned and entry.is_hashed:
            continue
        key = (entry.repo_id, entry.revision)
        if key not in resolved:
            try:
                info = api.model_info(entry.repo_id, revision=entry.revision, files_metadata=True)
            except network_errors as error:
                raise WeightsError(
                    f"cannot resolve {entry.repo_id}@{entry.revision} for '{entry.id}': {first_line(error)}"
                ) from error
            if not info.sha or not COMMIT_PATTERN.fullmatch(info.sha):
                raise WeightsError(f"the Hub returned no commit id for {entry.repo_id}@{entry.revision}")
            files = None if info.siblings is None else {s.rfilename: s for s in info.siblings}
            resolved[key] = (info.sha, files)
        commit, files = resolved[key]
        if files is not None and entry.filename not in files:
            raise WeightsError(
                f"{entry.filename} is not in {entry.repo_id} at {entry.revision} ({commit}); entry '{entry.id}'"
            )
        changes[entry.id] = {"revision": commit}
        if not entry.is_hashed:
            lfs = None if files is None else files[entry.filename].lfs
            if lfs is None or not SHA256_PATTERN.fullmatch(str(lfs.sha256)):
                raise WeightsError(f"the Hub reports no sha256 for {entry.filename} in {entry.repo_id} at {commit}; "
                                   f"entry '{entry.id}' stays unhashed")
            changes[entry.id].update(sha256=str(lfs.sha256), size=int(lfs.size))
            logger.info("recorded the Hub's sha256 of %s at %s: %s", entry.id, commit, lfs.sha256)
        logger.info("locked %s: %s -> %s", entry.id, entry.revision, commit)
    return manifest.updated(changes)


def build_model_card(entries: Sequence[WeightEntry], *, repo_id: str) -> str:
    """README.md (YAML front matter + sections) describing the bundled ``entries`` published to ``repo_id``."""
    from huggingface_hub import ModelCardData

    first_words = (entry.licence.split()[0].lower() for entry in entries)
    licences = {word if word in _HUB_LICENCES else "other" for word in first_words}
    tags = ["restorer", "image-restoration", *sorted({entry.stage for entry in entries} | {e.format for e in entries})]
    meta = ModelCardData(
        license=licences.pop() if len(licences) == 1 else "other",
        library_name="restorer",
        tags=tags,
    )
    lines = [
        "---",
        meta.to_yaml(),
        "---",
        "",
        f"# {repo_id}",
        "",
        "Weights used by restorer stages (old-photo restoration). Each file is listed in restorer's "
        "`weights/manifest.json` with its size and sha256, which the app checks before loading.",
        "",
    ]
    for entry in entries:
        card = dict(entry.card or {})
        metrics = card.get("metrics") or {}
        lines += [
            f"## {entry.id}",
            "",
            entry.description,
            "",
            f"- file: `{entry.filename}` ({entry.size} bytes, {entry.format})",
            f"- sha256: `{entry.sha256}`",
            f"- stage: `{entry.stage}`",
            f"- input contract: `{json.dumps(entry.input_contract)}`",
            "",
            "### Data",
            "",
            str(card.get("data", "Not documented.")),
            "",
            "### Training command",
            "",
        ]
        if "training_command" in card:
            lines += ["```bash", str(card["training_command"]), "```"]
        else:
            lines.append("Not documented.")
        if "seed" in card:
            lines += ["", f"Seed: `{card['seed']}`"]
        lines += ["", "### Metrics", ""]
        if metrics:
            lines += ["| metric | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in metrics.items())]
        else:
            lines.append("Not documented.")
        lines += ["", "### Licence", "", entry.licence, ""]
    return "\n".join(lines)


def stage_publish(manifest: Manifest, *, bundled_dir: Path, out_dir: Path, repo_id: str) -> list[Path]:
    """Write exactly what :func:`publish_bundled` uploads (bundled files at their Hub paths + README.md).

    Every bundled file is hashed first; ``out_dir`` must be absent or empty. Returns the written paths.
    """
    entries = [entry for entry in manifest if entry.bundled]
    if not entries:
        raise WeightsError("the manifest has no bundled entries (\"bundled\": true); nothing to publish")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise WeightsError(f"publish output folder {out_dir} is not empty; pass an empty or new folder")
    for entry in entries:
        source = bundled_dir / entry.local_name
        if not source.is_file():
            raise WeightsMissingError(f"bundled weight file {source} [{entry.id}] is missing; it must exist to publish")
        actual = sha256_file(source)
        if actual != entry.sha256 or source.stat().st_size != entry.size:
            raise WeightsIntegrityError(
                f"bundled weight file {source} [{entry.id}] does not match the manifest: expected sha256 "
                f"{entry.sha256}, actual sha256 {actual}; update the manifest entry before publishing"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for entry in entries:
        target = out_dir.joinpath(*entry.filename.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundled_dir / entry.local_name, target)
        written.append(target)
    card = out_dir / "README.md"
    card.write_text(build_model_card(entries, repo_id=repo_id), encoding="utf-8")
    written.append(card)
    return written


def publish_bundled(
    manifest: Manifest,
    *,
    bundled_dir: Path,
    repo_id: str,
    api: HfApi | None = None,
    endpoint: str | None = None,
    tag: str | None = None,
    commit_message: str | None = None,
) -> Manifest:
    """Upload the bundled entries and their model card to ``repo_id`` in one commit, optionally tag it.

    ``api`` defaults to :func:`hub_api` of ``endpoint``. Returns a copy of ``manifest`` whose
    bundled entries point at ``repo_id`` and the new commit id.
    """
    api = hub_api(endpoint) if api is None else api
    network_errors = _network_errors()
    with tempfile.TemporaryDirectory(prefix="restorer-publish-") as tmp:
        staged = Path(tmp) / "repo"
        stage_publish(manifest, bundled_dir=bundled_dir, out_dir=staged, repo_id=repo_id)
        try:
            api.create_repo(repo_id, repo_type="model", exist_ok=True)
            info = api.upload_folder(
                repo_id=repo_id,
                folder_path=staged,
                commit_message=commit_message or f"restorer weights{f' {tag}' if tag else ''}",
            )
            if tag:
                api.create_tag(repo_id, tag=tag, revision=info.oid)
        except network_errors as error:
            raise WeightsError(f"publishing to {repo_id} failed: {first_line(error)}") from error
    logger.info("published %s at commit %s", repo_id, info.oid)
    return manifest.updated(
        {entry.id: {"repo_id": repo_id, "revision": info.oid} for entry in manifest if entry.bundled}
    )
