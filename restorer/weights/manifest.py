"""The weight manifest: every file restorer may load, with its Hub location and exact bytes.

Each entry of ``weights/manifest.json`` records where a file is published (``repo_id``,
``filename``, ``revision``), its bytes (``size``, ``sha256``), licence and input contract.
This module reads, validates and writes the manifest, hashes files and loads verified ones;
:mod:`restorer.weights.store` finds and verifies files locally, and
:mod:`restorer.weights.hub` (the only module that imports ``huggingface_hub``) downloads, locks
and publishes them. Nothing here imports torch or the Hub client at import time.

See ``docs/weights.md`` for the manifest format and the command line.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from restorer import files
from restorer.errors import WeightsError, WeightsMissingError
from restorer.settings import default_manifest_path

if TYPE_CHECKING:
    import torch

__all__ = [
    "FORMAT_VERSION",
    "PULL_COMMAND",
    "Manifest",
    "WeightEntry",
    "default_manifest_path",
    "load_manifest",
    "load_safetensors",
    "load_torch_checkpoint",
    "sha256_file",
]

FORMAT_VERSION = 1
"""The manifest ``format_version`` this module reads and writes."""

PULL_COMMAND = "python -m restorer weights pull"
"""The command that fetches weight files; error messages append the ids to it."""

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
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
COMMIT_PATTERN = re.compile(r"[0-9a-f]{40}")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_ID = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_CHUNK = 1 << 20


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
        return COMMIT_PATTERN.fullmatch(self.revision) is not None

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
    elif not isinstance(entry.sha256, str) or not SHA256_PATTERN.fullmatch(entry.sha256):
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
        atomic_write_text(path, self.to_json())


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


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, creating its folder (restorer.files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_text(path, text)


# --------------------------------------------------------------------------------------- messages
# Shared by restorer.weights.store and restorer.weights.hub.
def pull_hint(entries: Sequence[WeightEntry]) -> str:
    """The command that fetches ``entries``."""
    return f"{PULL_COMMAND} {' '.join(entry.id for entry in entries)}"


def missing_error(entries: Sequence[WeightEntry], reason: str) -> WeightsMissingError:
    """Files absent here (for ``reason``), with the command that fetches them."""
    files = ", ".join(entry.label for entry in entries)
    return WeightsMissingError(
        f"weight file(s) not available locally and {reason}: {files}; "
        f"fetch them on a machine with network access with: {pull_hint(entries)}"
    )


def unhashed_error(entries: Sequence[WeightEntry]) -> WeightsError:
    """Files whose sha256 the manifest does not record yet, so they are never used."""
    files = ", ".join(entry.label for entry in entries)
    return WeightsError(
        f"the manifest records no sha256 for {files}, so it is never used; on a host with network access run "
        "`python -m restorer weights lock` (it pins the commit and records the Hub's sha256 and size of the file "
        "there), check the hash against a second source, then pull"
    )


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (its type's name when empty)."""
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

