"""Local resolution and verification of the manifest's weight files (:class:`WeightStore`).

A store finds a file locally (the bundled folder first, then the Hugging Face cache folder,
read directly in the Hub client's layout), downloads it through :mod:`restorer.weights.hub`
only when it is absent and allowed, and checks size and sha256 before the file is first used.
Verified files are recorded in a small stamp file so that later starts do not hash them again.
Nothing here touches the network or imports the Hub client at import time or in a constructor
given a cache folder.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from restorer.errors import WeightsIntegrityError, WeightsMissingError
from restorer.weights import hub
from restorer.weights.manifest import (COMMIT_PATTERN, Manifest, WeightEntry, atomic_write_text,
                                       load_manifest, missing_error, pull_hint, sha256_file,
                                       unhashed_error)

if TYPE_CHECKING:
    from restorer.settings import Settings

__all__ = ["STAMPS_FILENAME", "Downloader", "VerifyResult", "WeightStatus", "WeightStore",
           "build_store", "cached_file"]

logger = logging.getLogger(__name__)

STAMPS_FILENAME = "restorer-verified.json"
"""Name of the verified-stamp file kept in the store's state folder."""


def cached_file(cache_dir: Path, repo_id: str, filename: str, revision: str) -> Path | None:
    """Where the Hub client's cache folder ``cache_dir`` holds ``filename`` of model repo
    ``repo_id`` at ``revision`` (a commit id, or a branch or tag recorded in the cache's refs);
    None when it does not. Reads the documented cache layout
    (``models--OWNER--NAME/{refs,snapshots}``) without importing the client."""
    repo = cache_dir / f"models--{repo_id.replace('/', '--')}"
    commit = revision
    if not COMMIT_PATTERN.fullmatch(revision):
        try:
            commit = (repo / "refs" / revision).read_text(encoding="utf-8").strip()
        except OSError:
            return None
    path = repo / "snapshots" / commit / filename
    return path if path.is_file() else None


class WeightStatus(enum.StrEnum):
    """Local state of a weight file. ``status()`` never hashes, so it never reports ``corrupt``;
    ``unhashed``: the manifest records no sha256 yet, so the file is never used."""

    VERIFIED = "verified"
    PRESENT = "present"
    MISSING = "missing"
    CORRUPT = "corrupt"
    UNHASHED = "unhashed"


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of checking one weight file with :meth:`WeightStore.verify`."""

    id: str
    status: WeightStatus
    path: Path | None
    message: str

class Downloader(Protocol):
    """The part of ``huggingface_hub.hf_hub_download``'s signature that :class:`WeightStore` uses."""

    def __call__(
        self,
        repo_id: str,
        filename: str,
        *,
        revision: str | None = ...,
        cache_dir: str | Path | None = ...,
        local_files_only: bool = ...,
        endpoint: str | None = ...,
    ) -> str: ...


@dataclass(frozen=True)
class _Found:
    path: Path
    source: str  # "bundled" or "cache"


class WeightStore:
    """Finds, downloads and verifies the weight files of a manifest.

    Resolution order for an entry: 1) ``bundled_dir/<local_name>``; 2) the Hugging Face cache
    (``cache_dir``, the Hub client's default folder when None) at the entry's revision; 3) a
    download with ``downloader`` (``hf_hub_download``) unless ``offline``. Size and sha256 are
    checked before a path is returned; verified files are stamped in
    ``state_dir/restorer-verified.json`` (``state_dir`` defaults to the cache folder).
    """

    def __init__(
        self,
        manifest: Manifest,
        *,
        bundled_dir: Path,
        cache_dir: Path | None = None,
        state_dir: Path | None = None,
        offline: bool = False,
        downloader: Downloader | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.manifest = manifest
        self.bundled_dir = Path(bundled_dir)
        # None: the Hub client's default folder (asking it imports the client; the edges pass
        # Settings.cache_dir, which is always a folder).
        self.cache_dir = hub.default_cache_dir() if cache_dir is None else Path(cache_dir)
        self.offline = offline
        self.endpoint = endpoint
        self.downloader: Downloader = hub.hf_download if downloader is None else downloader
        self.stamps_path = Path(self.cache_dir if state_dir is None else state_dir) / STAMPS_FILENAME
        self._stamps_lock = threading.Lock()

    # ------------------------------------------------------------------------------- queries
    def local_path(self, weight_id: str) -> Path | None:
        """Where the file is on disk (bundled or cached), unverified; None when absent. No network."""
        found = self._locate(self.manifest.get(weight_id))
        return None if found is None else found.path

    def status(self, weight_id: str) -> WeightStatus:
        """``verified`` (stamped and unchanged), ``present`` (on disk, not yet verified) or ``missing``.

        Neither hashes nor touches the network.
        """
        entry = self.manifest.get(weight_id)
        if not entry.is_hashed:
            return WeightStatus.UNHASHED
        found = self._locate(entry)
        if found is None:
            return WeightStatus.MISSING
        real = found.path.resolve()
        if self._stamped(real, entry):
            return WeightStatus.VERIFIED
        return WeightStatus.PRESENT

    def is_available(self, weight_id: str) -> bool:
        """True when the file is on disk and verifies (hashing it once if not yet stamped). No network.

        A corrupt cached copy is deleted (see :meth:`resolve`) and reported as unavailable.
        """
        if not self.manifest.get(weight_id).is_hashed:
            return False
        try:
            self.resolve(weight_id, download=False)
        except WeightsMissingError:
            return False
        except WeightsIntegrityError as error:
            logger.warning("%s", error)
            return False
        return True

    # ------------------------------------------------------------------------------- actions
    def resolve(self, weight_id: str, *, download: bool = True) -> Path:
        """A verified local path for ``weight_id``, downloading it when absent (unless offline).

        Raises :class:`WeightsMissingError` (absent and offline or unreachable, with the command that
        fetches it), :class:`WeightsIntegrityError` (wrong size or sha256; a cached copy is deleted,
        a bundled one is left in place and refused) or :class:`WeightsError` (the Hub refused).
        """
        entry = self.manifest.get(weight_id)
        if not entry.is_hashed:
            raise unhashed_error([entry])
        found = self._locate(entry)
        if found is None:
            if self.offline or not download:
                reason = "offline mode is on" if self.offline else "downloading was not allowed"
                raise missing_error([entry], reason)
            found = _Found(self._download(entry), "cache")
        return self._check(entry, found)

    def pull(self, ids: Iterable[str] | None = None, *, progress: bool = True) -> list[Path]:
        """Resolve (download if needed) and verify the given entries, or all; returns their paths.

        Entries that cannot be fetched are reported together in one :class:`WeightsMissingError`.
        """
        from tqdm.auto import tqdm

        entries = self.manifest.select(ids)
        paths: list[Path] = []
        missing: list[WeightEntry] = []
        unhashed = [entry for entry in entries if not entry.is_hashed]
        entries = tuple(entry for entry in entries if entry.is_hashed)
        for entry in tqdm(entries, desc="weights", unit="file", disable=not progress or len(entries) < 2):
            try:
                paths.append(self.resolve(entry.id))
            except WeightsMissingError as error:
                missing.append(entry)
                logger.debug("pull: %s", error)
        if missing:
            why = "offline mode is on" if self.offline else "the Hugging Face Hub could not be reached"
            raise missing_error(missing, why)
        if unhashed:
            raise unhashed_error(unhashed)
        return paths

    def verify(self, ids: Iterable[str] | None = None) -> dict[str, VerifyResult]:
        """Hash every given (or every) local file again, ignoring stamps; never downloads.

        Corrupt cached copies are deleted, as in :meth:`resolve`.
        """
        results: dict[str, VerifyResult] = {}
        for entry in self.manifest.select(ids):
            if not entry.is_hashed:
                results[entry.id] = VerifyResult(entry.id, WeightStatus.UNHASHED, None, str(unhashed_error([entry])))
                continue
            found = self._locate(entry)
            if found is None:
                hint = f"not found; {pull_hint([entry])}"
                results[entry.id] = VerifyResult(entry.id, WeightStatus.MISSING, None, hint)
                continue
            try:
                path = self._check(entry, found, trust_stamp=False)
            except WeightsIntegrityError as error:
                results[entry.id] = VerifyResult(entry.id, WeightStatus.CORRUPT, found.path, str(error))
            else:
                results[entry.id] = VerifyResult(entry.id, WeightStatus.VERIFIED, path, f"{found.source}: {path}")
        return results

    # ------------------------------------------------------------------------------- internals
    def _locate(self, entry: WeightEntry) -> _Found | None:
        bundled = self.bundled_dir / entry.local_name
        if bundled.is_file():
            return _Found(bundled, "bundled")
        cached = cached_file(self.cache_dir, entry.repo_id, entry.filename, entry.revision)
        return None if cached is None else _Found(cached, "cache")

    def _download(self, entry: WeightEntry) -> Path:
        logger.info("downloading %s", entry.label)
        return hub.fetch(self.downloader, entry, cache_dir=self.cache_dir, endpoint=self.endpoint)

    def _check(self, entry: WeightEntry, found: _Found, *, trust_stamp: bool = True) -> Path:
        """Return ``found.path`` if its bytes match ``entry``; otherwise refuse it (and delete a cached copy)."""
        real = found.path.resolve()
        if trust_stamp and self._stamped(real, entry):
            return found.path
        actual = sha256_file(real)
        size = real.stat().st_size
        if size == entry.size and actual == entry.sha256:
            self._stamp(real, entry)
            logger.debug("verified %s at %s", entry.id, found.path)
            return found.path
        self._forget(real)
        if found.source == "cache":
            try:
                found.path.unlink(missing_ok=True)
                real.unlink(missing_ok=True)
            except OSError as error:
                action = f"deleting the cached copy failed ({error}); delete {real} by hand"
            else:
                action = f"the cached copy was deleted; run `{pull_hint([entry])}` to download it again"
        else:
            action = (
                "the bundled file was left in place and refused; restore it (e.g. `git checkout -- "
                f"{found.path.name}` in {found.path.parent}) or delete it so the published copy is used"
            )
        raise WeightsIntegrityError(
            f"{entry.local_name} [{entry.id}] at {found.path} does not match the manifest: "
            f"expected sha256 {entry.sha256} ({entry.size} bytes), actual sha256 {actual} ({size} bytes); {action}"
        )

    # stamps: {"version": 1, "files": {"/abs/resolved/path": {"size": int, "mtime_ns": int, "sha256": str}}}
    def _read_stamps(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.stamps_path.read_text(encoding="utf-8"))
            files = data["files"]
            if not isinstance(files, dict):
                raise TypeError("'files' is not an object")
            return files
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as error:
            logger.warning(
                "ignoring unreadable weight stamps %s (%s); files will be hashed again", self.stamps_path, error
            )
            return {}

    def _stamped(self, real: Path, entry: WeightEntry) -> bool:
        try:
            st = real.stat()
        except OSError:
            return False
        stamp = self._read_stamps().get(str(real))
        return (
            isinstance(stamp, dict)
            and st.st_size == entry.size
            and stamp.get("size") == st.st_size
            and stamp.get("mtime_ns") == st.st_mtime_ns
            and stamp.get("sha256") == entry.sha256
        )

    def _stamp(self, real: Path, entry: WeightEntry) -> None:
        st = real.stat()
        self._update_stamps({str(real): {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": entry.sha256}})

    def _forget(self, real: Path) -> None:
        self._update_stamps({str(real): None})

    def _update_stamps(self, changes: Mapping[str, dict[str, Any] | None]) -> None:
        with self._stamps_lock:
            files = self._read_stamps()
            for key, value in changes.items():
                if value is None:
                    files.pop(key, None)
                else:
                    files[key] = value
            files = {key: value for key, value in files.items() if os.path.exists(key)}
            try:
                atomic_write_text(self.stamps_path, json.dumps({"version": 1, "files": files}, indent=1) + "\n")
            except OSError as error:
                logger.warning(
                    "cannot write weight stamps %s (%s); files will be hashed again", self.stamps_path, error
                )


def build_store(settings: Settings) -> WeightStore:
    """The one weight store of ``settings``, used by ``restore``, ``batch``, ``weights`` and the
    app alike: manifest, bundled folder, cache folder, stamp folder, offline, endpoint. Reads
    the manifest; no weight file is read or fetched yet."""
    return WeightStore(load_manifest(settings.manifest), bundled_dir=settings.bundled_dir,
                       cache_dir=settings.cache_dir, state_dir=settings.state_dir,
                       offline=settings.offline, endpoint=settings.endpoint)
