"""Versioned, verified weight files: the manifest, local resolution, Hub download, lock and publish.

Every weight file restorer may load is listed in ``weights/manifest.json`` with its Hub location
(``repo_id``, ``filename``, ``revision``) and its exact bytes (``size``, ``sha256``). A
:class:`WeightStore` finds a file locally (bundled folder first, then the Hugging Face cache),
downloads it with ``huggingface_hub`` only when it is absent, and checks size and sha256 before the
file is first used. Verified files are recorded in a small stamp file so that later starts do not
hash them again. Nothing here touches the network at import time or in a constructor.

See ``docs/weights.md`` for the manifest format and the command line.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx2
from huggingface_hub import HfApi, ModelCardData, hf_hub_download, try_to_load_from_cache
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from tqdm.auto import tqdm

from restorer import files
from restorer.errors import WeightsError, WeightsIntegrityError, WeightsMissingError

if TYPE_CHECKING:
    import torch

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
    "default_manifest_path",
    "load_manifest",
    "load_safetensors",
    "load_torch_checkpoint",
    "lock_manifest",
    "publish_bundled",
    "sha256_file",
    "stage_publish",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""The manifest ``format_version`` this module reads and writes."""

PULL_COMMAND = "python -m restorer weights pull"
"""The command that fetches weight files; error messages append the ids to it."""

STAMPS_FILENAME = "restorer-verified.json"
"""Name of the verified-stamp file kept in the store's state folder."""

FORMATS = frozenset({"safetensors", "pth", "pt", "keras"})
CARD_KEYS = frozenset({"data", "training_command", "metrics", "seed"})
_ENTRY_FIELDS = (
    "id",
    "repo_id",
    "filename",
    "local_name",
    "revision",
    "sha256",
    "size",
    "format",
    "licence",
    "stage",
    "input_contract",
    "bundled",
    "description",
)
_OPTIONAL_FIELDS = ("card", "licence_url", "architecture")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_ID = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_CHUNK = 1 << 20
# Hub licence identifiers written as-is into model-card front matter; any other licence becomes "other".
_HUB_LICENCES = frozenset({"apache-2.0", "mit", "bsd-3-clause", "cc-by-4.0"})


# --------------------------------------------------------------------------------------- manifest
@dataclass(frozen=True, kw_only=True)
class WeightEntry:
    """One weight file: where it is published, its exact bytes, and how restorer uses it."""

    id: str
    repo_id: str
    filename: str
    local_name: str
    revision: str
    sha256: str | None
    size: int | None
    format: str
    licence: str
    stage: str
    input_contract: Mapping[str, Any] | None = field(hash=False)
    bundled: bool
    description: str
    card: Mapping[str, Any] | None = field(default=None, hash=False)
    #: Where the licence text is published (third-party files).
    licence_url: str | None = None
    #: The architecture spandrel (or restorer's own loader) must report for this file.
    architecture: str | None = None

    def __post_init__(self) -> None:
        problems = _entry_problems(self)
        if problems:
            raise WeightsError(f"weight entry '{self.id}': {'; '.join(problems)}")

    @property
    def is_pinned(self) -> bool:
        """True when ``revision`` is a 40-hex commit id (immutable), not a branch or tag."""
        return _COMMIT.fullmatch(self.revision) is not None

    @property
    def is_hashed(self) -> bool:
        """True when the manifest records the file's sha256 and size. An entry without them
        (no public source states them) is never used until ``weights lock`` records the
        Hub's own hash of the file at a pinned commit."""
        return self.sha256 is not None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WeightEntry:
        """Build an entry from its manifest JSON object; raises :class:`WeightsError` naming the problem."""
        if not isinstance(data, Mapping):
            raise WeightsError(f"a manifest entry must be a JSON object, got {type(data).__name__}")
        missing = [name for name in _ENTRY_FIELDS if name not in data]
        unknown = sorted(set(data) - set(_ENTRY_FIELDS) - set(_OPTIONAL_FIELDS))
        label = data.get("id", "?")
        if missing:
            raise WeightsError(f"weight entry '{label}': missing field(s) {', '.join(missing)}")
        if unknown:
            raise WeightsError(f"weight entry '{label}': unknown field(s) {', '.join(unknown)}")
        return cls(**{name: data[name] for name in (*_ENTRY_FIELDS, *_OPTIONAL_FIELDS) if name in data})

    def to_dict(self) -> dict[str, Any]:
        """The manifest JSON object for this entry (``card`` only when set)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _ENTRY_FIELDS}
        out["input_contract"] = None if self.input_contract is None else dict(self.input_contract)
        if self.card is not None:
            out["card"] = dict(self.card)
        for name in ("licence_url", "architecture"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    @property
    def label(self) -> str:
        """Short human description used in messages: ``local_name [id] from repo@revision``."""
        return f"{self.local_name} [{self.id}] from {self.repo_id}@{self.revision}"


def _entry_problems(entry: WeightEntry) -> list[str]:
    """Every reason ``entry`` is invalid (empty when valid)."""
    problems: list[str] = []
    for name in ("id", "repo_id", "filename", "local_name", "revision", "format", "licence", "stage"):
        if not isinstance(getattr(entry, name), str) or not getattr(entry, name).strip():
            problems.append(f"'{name}' must be a non-empty string")
    if problems:
        return problems
    if not _ID.fullmatch(entry.id):
        problems.append("'id' must be lower-case letters, digits, '_', '-' or '.'")
    if not _REPO_ID.fullmatch(entry.repo_id):
        problems.append(f"'repo_id' must look like 'owner/name', got '{entry.repo_id}'")
    parts = entry.filename.split("/")
    if entry.filename.startswith("/") or any(part in ("", ".", "..") for part in parts):
        problems.append(f"'filename' must be a relative path inside the repo, got '{entry.filename}'")
    if "/" in entry.local_name or "\\" in entry.local_name or entry.local_name in (".", ".."):
        problems.append(f"'local_name' must be a plain file name, got '{entry.local_name}'")
    if entry.sha256 is None or entry.size is None:
        if entry.sha256 is not None or entry.size is not None or entry.bundled:
            problems.append("'sha256' and 'size' may be null only together, for a published file whose hash "
                            "no source states ('weights lock' records the Hub's)")
    elif not isinstance(entry.sha256, str) or not _SHA256.fullmatch(entry.sha256):
        problems.append("'sha256' must be 64 lower-case hex digits")
    elif isinstance(entry.size, bool) or not isinstance(entry.size, int) or entry.size <= 0:
        problems.append("'size' must be a positive integer (bytes)")
    if entry.licence_url is not None and not (isinstance(entry.licence_url, str)
                                              and re.fullmatch(r"https://\S+", entry.licence_url)):
        problems.append("'licence_url' must be an https:// URL")
    if entry.architecture is not None and not (isinstance(entry.architecture, str) and entry.architecture.strip()):
        problems.append("'architecture' must be a non-empty string")
    if entry.format not in FORMATS:
        problems.append(f"'format' must be one of {', '.join(sorted(FORMATS))}, got '{entry.format}'")
    if entry.input_contract is not None and not isinstance(entry.input_contract, Mapping):
        problems.append("'input_contract' must be an object or null")
    if not isinstance(entry.bundled, bool):
        problems.append("'bundled' must be true or false")
    if not isinstance(entry.description, str):
        problems.append("'description' must be a string")
    if entry.card is not None:
        if not isinstance(entry.card, Mapping):
            problems.append("'card' must be an object")
        elif unknown := sorted(set(entry.card) - CARD_KEYS):
            problems.append(f"'card' has unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(CARD_KEYS))})")
    return problems


@dataclass(frozen=True)
class Manifest:
    """The ordered set of weight entries, looked up by id."""

    entries: tuple[WeightEntry, ...]
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for entry in self.entries:
            if entry.id in seen:
                raise WeightsError(f"manifest lists weight id '{entry.id}' twice; ids must be unique")
            seen.add(entry.id)

    @property
    def ids(self) -> tuple[str, ...]:
        """Entry ids in manifest order."""
        return tuple(entry.id for entry in self.entries)

    def get(self, weight_id: str) -> WeightEntry:
        """The entry with ``weight_id``; raises :class:`WeightsError` listing the known ids."""
        for entry in self.entries:
            if entry.id == weight_id:
                return entry
        raise WeightsError(f"unknown weight id '{weight_id}'; known ids: {', '.join(self.ids) or '(none)'}")

    def select(self, ids: Iterable[str] | None = None) -> tuple[WeightEntry, ...]:
        """Entries for ``ids`` (in that order), or all entries when ``ids`` is None or empty."""
        wanted = list(ids or ())
        return tuple(self.get(weight_id) for weight_id in wanted) if wanted else self.entries

    def updated(self, changes: Mapping[str, Mapping[str, Any]]) -> Manifest:
        """A copy with fields of some entries replaced: ``{id: {field: value}}``."""
        for weight_id in changes:
            self.get(weight_id)
        return Manifest(
            tuple(replace(e, **changes[e.id]) if e.id in changes else e for e in self.entries),
            self.format_version,
        )

    def __iter__(self) -> Iterator[WeightEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, weight_id: object) -> bool:
        return any(entry.id == weight_id for entry in self.entries)

    def to_dict(self) -> dict[str, Any]:
        """The manifest as a JSON-ready object."""
        return {"format_version": self.format_version, "entries": [entry.to_dict() for entry in self.entries]}

    def to_json(self) -> str:
        """Manifest text: one field per line, each value (``input_contract``, ``card``) on its line."""
        entries = [
            "    {\n"
            + ",\n".join(f"      {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in e.to_dict().items())
            + "\n    }"
            for e in self.entries
        ]
        body = "[\n" + ",\n".join(entries) + "\n  ]" if entries else "[]"
        return f'{{\n  "format_version": {self.format_version},\n  "entries": {body}\n}}\n'

    def save(self, path: Path) -> None:
        """Write the manifest to ``path`` atomically (temporary file, then ``os.replace``)."""
        _atomic_write_text(path, self.to_json())


def default_manifest_path() -> Path:
    """``weights/manifest.json`` at the root of the restorer source tree."""
    return Path(__file__).resolve().parent.parent / "weights" / "manifest.json"


def load_manifest(path: Path) -> Manifest:
    """Read and validate a manifest; every problem is reported as :class:`WeightsError` naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsError(f"weights manifest not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise WeightsError(f"cannot read weights manifest {path}: {error}") from error
    except json.JSONDecodeError as error:
        raise WeightsError(f"weights manifest {path} is not valid JSON: {error}") from error
    if not isinstance(data, dict) or set(data) != {"format_version", "entries"}:
        raise WeightsError(f"weights manifest {path} must be an object with exactly 'format_version' and 'entries'")
    if data["format_version"] != FORMAT_VERSION:
        raise WeightsError(
            f"weights manifest {path} has format_version {data['format_version']!r}; "
            f"this restorer reads version {FORMAT_VERSION}"
        )
    if not isinstance(data["entries"], list):
        raise WeightsError(f"weights manifest {path}: 'entries' must be a list")
    try:
        return Manifest(tuple(WeightEntry.from_dict(item) for item in data["entries"]), FORMAT_VERSION)
    except WeightsError as error:
        raise WeightsError(f"weights manifest {path}: {error}") from None


# --------------------------------------------------------------------------------------- hashing
def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, creating its folder (restorer.files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_text(path, text)


def _pull_hint(entries: Sequence[WeightEntry]) -> str:
    return f"{PULL_COMMAND} {' '.join(entry.id for entry in entries)}"


# --------------------------------------------------------------------------------------- store
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
    (``cache_dir``, the Hub's default cache when None) at the entry's revision; 3) a download with
    ``downloader`` (``hf_hub_download``) unless ``offline``. Size and sha256 are checked before a
    path is returned; verified files are stamped in ``state_dir/restorer-verified.json``
    (``state_dir`` defaults to ``cache_dir``, then to the Hub's default cache folder).
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
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.offline = offline
        self.endpoint = endpoint
        self.downloader: Downloader = hf_hub_download if downloader is None else downloader
        if state_dir is None:
            state_dir = self.cache_dir if self.cache_dir is not None else Path(hf_constants.HF_HUB_CACHE)
        self.stamps_path = Path(state_dir) / STAMPS_FILENAME
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
            raise _unhashed_error([entry])
        found = self._locate(entry)
        if found is None:
            if self.offline or not download:
                reason = "offline mode is on" if self.offline else "downloading was not allowed"
                raise _missing_error([entry], reason)
            found = _Found(self._download(entry), "cache")
        return self._check(entry, found)

    def pull(self, ids: Iterable[str] | None = None, *, progress: bool = True) -> list[Path]:
        """Resolve (download if needed) and verify the given entries, or all; returns their paths.

        Entries that cannot be fetched are reported together in one :class:`WeightsMissingError`.
        """
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
            raise _missing_error(missing, why)
        if unhashed:
            raise _unhashed_error(unhashed)
        return paths

    def verify(self, ids: Iterable[str] | None = None) -> dict[str, VerifyResult]:
        """Hash every given (or every) local file again, ignoring stamps; never downloads.

        Corrupt cached copies are deleted, as in :meth:`resolve`.
        """
        results: dict[str, VerifyResult] = {}
        for entry in self.manifest.select(ids):
            if not entry.is_hashed:
                results[entry.id] = VerifyResult(entry.id, WeightStatus.UNHASHED, None, str(_unhashed_error([entry])))
                continue
            found = self._locate(entry)
            if found is None:
                hint = f"not found; {_pull_hint([entry])}"
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
        cached = try_to_load_from_cache(
            entry.repo_id,
            entry.filename,
            cache_dir=None if self.cache_dir is None else str(self.cache_dir),
            revision=entry.revision,
        )
        if isinstance(cached, str):
            return _Found(Path(cached), "cache")
        return None

    def _download(self, entry: WeightEntry) -> Path:
        logger.info("downloading %s", entry.label)
        try:
            path = self.downloader(
                entry.repo_id,
                entry.filename,
                revision=entry.revision,
                cache_dir=self.cache_dir,
                local_files_only=False,
                endpoint=self.endpoint,
            )
        except LocalEntryNotFoundError:
            raise _missing_error([entry], "the Hugging Face Hub could not be reached") from None
        except HfHubHTTPError as error:
            raise WeightsError(
                f"the Hub refused {entry.filename} from {entry.repo_id}@{entry.revision} "
                f"({type(error).__name__}: {_first_line(error)}); check the manifest entry '{entry.id}'"
            ) from error
        except httpx2.TransportError as error:
            raise _missing_error([entry], f"the download was interrupted ({type(error).__name__})") from error
        except OSError as error:
            raise WeightsError(f"downloading {entry.label} failed: {_first_line(error)}") from error
        return Path(path)

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
                action = f"the cached copy was deleted; run `{_pull_hint([entry])}` to download it again"
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
                _atomic_write_text(self.stamps_path, json.dumps({"version": 1, "files": files}, indent=1) + "\n")
            except OSError as error:
                logger.warning(
                    "cannot write weight stamps %s (%s); files will be hashed again", self.stamps_path, error
                )


def _missing_error(entries: Sequence[WeightEntry], reason: str) -> WeightsMissingError:
    files = ", ".join(entry.label for entry in entries)
    return WeightsMissingError(
        f"weight file(s) not available locally and {reason}: {files}; "
        f"fetch them on a machine with network access with: {_pull_hint(entries)}"
    )


def _unhashed_error(entries: Sequence[WeightEntry]) -> WeightsError:
    files = ", ".join(entry.label for entry in entries)
    return WeightsError(
        f"the manifest records no sha256 for {files}, so it is never used; on a host with network access run "
        "`python -m restorer weights lock` (it pins the commit and records the Hub's sha256 and size of the file "
        "there), check the hash against a second source, then pull"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --------------------------------------------------------------------------------------- loading
def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file on CPU. Only call with a path from :meth:`WeightStore.resolve`."""
    from safetensors.torch import load_file

    return load_file(str(path))


def load_torch_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """A ``torch.load`` with ``weights_only=True`` (no arbitrary pickles). Only call on resolved paths."""
    import torch

    return torch.load(path, map_location=map_location, weights_only=True)


# --------------------------------------------------------------------------------------- lock / publish
def lock_manifest(manifest: Manifest, *, api: HfApi) -> Manifest:
    """A copy of ``manifest`` whose branch/tag revisions are replaced by the commit ids they point to now.

    Needs network access through ``api``. Checks that each file exists at the resolved commit. An
    entry without a sha256 also gets the sha256 and size the Hub reports for its file at that commit
    (its LFS object id, the hash of the content).
    """
    resolved: dict[tuple[str, str], tuple[str, dict[str, Any] | None]] = {}
    changes: dict[str, dict[str, Any]] = {}
    for entry in manifest:
        if entry.is_pinned and entry.is_hashed:
            continue
        key = (entry.repo_id, entry.revision)
        if key not in resolved:
            try:
                info = api.model_info(entry.repo_id, revision=entry.revision, files_metadata=True)
            except (HfHubHTTPError, httpx2.TransportError, OSError) as error:
                raise WeightsError(
                    f"cannot resolve {entry.repo_id}@{entry.revision} for '{entry.id}': {_first_line(error)}"
                ) from error
            if not info.sha or not _COMMIT.fullmatch(info.sha):
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
            if lfs is None or not _SHA256.fullmatch(str(lfs.sha256)):
                raise WeightsError(f"the Hub reports no sha256 for {entry.filename} in {entry.repo_id} at {commit}; "
                                   f"entry '{entry.id}' stays unhashed")
            changes[entry.id].update(sha256=str(lfs.sha256), size=int(lfs.size))
            logger.info("recorded the Hub's sha256 of %s at %s: %s", entry.id, commit, lfs.sha256)
        logger.info("locked %s: %s -> %s", entry.id, entry.revision, commit)
    return manifest.updated(changes)


def build_model_card(entries: Sequence[WeightEntry], *, repo_id: str) -> str:
    """README.md (YAML front matter + sections) describing the bundled ``entries`` published to ``repo_id``."""
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
    api: HfApi,
    tag: str | None = None,
    commit_message: str | None = None,
) -> Manifest:
    """Upload the bundled entries and their model card to ``repo_id`` in one commit, optionally tag it.

    Returns a copy of ``manifest`` whose bundled entries point at ``repo_id`` and the new commit id.
    """
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
        except (HfHubHTTPError, httpx2.TransportError, OSError) as error:
            raise WeightsError(f"publishing to {repo_id} failed: {_first_line(error)}") from error
    logger.info("published %s at commit %s", repo_id, info.oid)
    return manifest.updated(
        {entry.id: {"repo_id": repo_id, "revision": info.oid} for entry in manifest if entry.bundled}
    )
