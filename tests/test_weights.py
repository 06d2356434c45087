"""Weight manifest, resolution, integrity, stamps, offline mode and the `weights` command line.

Downloads go through the real ``huggingface_hub`` client against a local in-memory Hub
(tests/hub_server.py) on 127.0.0.1; nothing here reaches the internet.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import huggingface_hub
import huggingface_hub.constants
import pytest

from restorer import weights
from restorer.cli import main
from restorer.errors import ExitCode, WeightsError, WeightsIntegrityError, WeightsMissingError
from restorer.settings import build_settings
from restorer.weights import (
    Manifest,
    WeightEntry,
    WeightStatus,
    WeightStore,
    default_manifest_path,
    load_manifest,
)
from restorer.weights_cli import add_parser
from restorer.weights import store as weight_store

try:
    from tests.hub_server import FakeHub
except ImportError:  # tests/ is not importable as a package: pytest put tests/ itself on sys.path
    from hub_server import FakeHub

REPO = "org/weights"
PULL = "python -m restorer weights pull"


# --------------------------------------------------------------------------------------- helpers
@pytest.fixture(autouse=True)
def _hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests decide offline mode themselves, whatever HF_HUB_OFFLINE says (conftest.py sets it)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as server:
        yield server


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records every file the store hashes."""
    calls: list[Path] = []
    real = weights.sha256_file

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(weight_store, "sha256_file", counting)
    return calls


def blob(seed: str, size: int = 4096) -> bytes:
    """Deterministic stand-in weight bytes."""
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return out[:size]


def entry(
    weight_id: str,
    data: bytes,
    *,
    filename: str | None = None,
    local_name: str | None = None,
    revision: str = "main",
    bundled: bool = False,
    fmt: str = "pth",
    repo_id: str = REPO,
    card: dict[str, Any] | None = None,
) -> WeightEntry:
    name = filename or f"{weight_id}.{fmt}"
    return WeightEntry(
        id=weight_id,
        repo_id=repo_id,
        filename=name,
        local_name=local_name or name.rsplit("/", 1)[-1],
        revision=revision,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        format=fmt,
        licence="MIT",
        stage="face",
        input_contract={"size": 512, "range": [-1, 1], "channels": "RGB"},
        bundled=bundled,
        description=f"stand-in {weight_id}",
        card=card,
    )


def store_for(
    tmp_path: Path,
    entries: list[WeightEntry] | Manifest,
    hub: FakeHub | None = None,
    **options: Any,
) -> WeightStore:
    manifest = entries if isinstance(entries, Manifest) else Manifest(tuple(entries))
    options.setdefault("bundled_dir", tmp_path / "bundled")
    options.setdefault("cache_dir", tmp_path / "cache")
    return WeightStore(manifest, endpoint=None if hub is None else hub.endpoint, **options)


def blobs_in(cache: Path) -> list[Path]:
    return sorted(p for p in cache.glob("models--*/blobs/*") if not p.name.endswith(".incomplete"))


def run_cli(*argv: str) -> int:
    """``python -m restorer ARGV``'s exit code (errors printed and mapped by cli.main)."""
    return main(list(argv))


def write_manifest(path: Path, entries: list[WeightEntry]) -> Path:
    Manifest(tuple(entries)).save(path)
    return path


# --------------------------------------------------------------------------------------- manifest
THIRD_PARTY = {
    "GFPGANv1.4.pth": (348632874, "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad"),
    "detection_Resnet50_Final.pth": (109497761, "6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d"),
    "parsing_parsenet.pth": (85331193, "3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2"),
}


def test_real_manifest_lists_the_face_weights_with_exact_bytes() -> None:
    path = default_manifest_path()
    assert path == Path(__file__).resolve().parent.parent / "weights" / "manifest.json"
    manifest = load_manifest(path)
    by_name = {e.local_name: e for e in manifest}
    assert set(THIRD_PARTY) <= set(by_name)
    for name, (size, sha256) in THIRD_PARTY.items():
        e = by_name[name]
        assert (e.size, e.sha256) == (size, sha256)
        assert e.stage == "face" and e.format == "pth" and not e.bundled
        assert e.revision == "main" or e.is_pinned
    assert by_name["detection_Resnet50_Final.pth"].repo_id == "akhaliq/RetinaFace-R50"
    assert by_name["detection_Resnet50_Final.pth"].filename == "RetinaFace-R50.pth"
    # Saving writes the file back byte for byte, so `lock` diffs stay minimal.
    assert manifest.to_json() == path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["entries"][0].update(sha256="abc"), "'sha256' must be 64"),
        (lambda d: d["entries"][0].update(size=0), "'size' must be a positive"),
        (lambda d: d["entries"][0].update(format="onnx"), "'format' must be one of"),
        (lambda d: d["entries"][0].update(local_name="a/b.pth"), "plain file name"),
        (lambda d: d["entries"][0].update(filename="../x.pth"), "relative path"),
        (lambda d: d["entries"][0].update(colour="red"), "unknown field(s) colour"),
        (lambda d: d["entries"][0].pop("licence"), "missing field(s) licence"),
        (lambda d: d["entries"][0].update(card={"dataset": "x"}), "'card' has unknown key(s) dataset"),
        (lambda d: d["entries"].append(dict(d["entries"][0])), "twice"),
        (lambda d: d.update(format_version=2), "format_version 2"),
    ],
)
def test_manifest_validation_names_the_problem(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    data = Manifest((entry("a", blob("a")),)).to_dict()
    mutate(data)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data))
    with pytest.raises(WeightsError, match=re.escape(message)) as caught:
        load_manifest(path)
    assert str(path) in str(caught.value)


def test_unknown_id_lists_known_ids(tmp_path: Path) -> None:
    manifest = Manifest((entry("a", blob("a")), entry("b", blob("b"))))
    with pytest.raises(WeightsError, match="unknown weight id 'c'; known ids: a, b"):
        manifest.get("c")
    manifest_path = str(write_manifest(tmp_path / "m.json", []))
    assert run_cli("weights", "pull", "c", "--manifest", manifest_path) == ExitCode.REFUSED


# --------------------------------------------------------------------------------------- download
def test_pinned_commit_gets_its_bytes_after_the_branch_moves(tmp_path: Path, hub: FakeHub) -> None:
    old, new = blob("v1"), blob("v2")
    first = hub.commit(REPO, {"model.pth": old})
    hub.commit(REPO, {"model.pth": new})  # main moves on
    pinned = entry("model", old, filename="model.pth", revision=first)
    path = store_for(tmp_path, [pinned], hub).resolve("model")
    assert path.read_bytes() == old
    assert first in path.parts
    # The branch itself now serves the new bytes, to a store that expects them.
    latest = entry("model", new, filename="model.pth")
    assert store_for(tmp_path / "b", [latest], hub).resolve("model").read_bytes() == new


def test_tampered_download_is_refused_deleted_and_can_be_fetched_again(
    tmp_path: Path, hub: FakeHub
) -> None:
    good, evil = blob("good"), blob("evil")
    hub.commit(REPO, {"model.pth": evil})
    store = store_for(tmp_path, [entry("model", good, filename="model.pth")], hub)
    with pytest.raises(WeightsIntegrityError) as caught:
        store.resolve("model")
    message = str(caught.value)
    assert hashlib.sha256(good).hexdigest() in message and hashlib.sha256(evil).hexdigest() in message
    assert "model.pth" in message and f"{PULL} model" in message
    assert blobs_in(tmp_path / "cache") == []
    assert store.status("model") is WeightStatus.MISSING
    hub.commit(REPO, {"model.pth": good})  # the publisher fixes the branch
    assert store.resolve("model").read_bytes() == good


def test_interrupted_transfer_is_refused_and_leaves_nothing(tmp_path: Path, hub: FakeHub) -> None:
    data = blob("big", 20000)
    hub.commit(REPO, {"model.pth": data})
    hub.short_body[(REPO, "model.pth")] = 1000  # the GET stops early; the HEAD announced 20000 bytes
    store = store_for(tmp_path, [entry("model", data, filename="model.pth")], hub)
    with pytest.raises(WeightsError, match="should be of size 20000 but has size 1000"):
        store.resolve("model")
    assert blobs_in(tmp_path / "cache") == []
    del hub.short_body[(REPO, "model.pth")]
    assert store.resolve("model").read_bytes() == data


def test_wrong_size_file_is_refused_by_size_and_hash(tmp_path: Path, hub: FakeHub) -> None:
    data = blob("full", 8000)
    hub.commit(REPO, {"model.pth": data})
    hub.short_file[(REPO, "model.pth")] = 5000  # the Hub itself serves a consistent but truncated file
    store = store_for(tmp_path, [entry("model", data, filename="model.pth")], hub)
    with pytest.raises(WeightsIntegrityError, match=r"\(8000 bytes\), actual sha256 [0-9a-f]{64} \(5000 bytes\)"):
        store.resolve("model")
    assert blobs_in(tmp_path / "cache") == []


def test_remote_errors_become_weights_errors(tmp_path: Path, hub: FakeHub) -> None:
    hub.commit(REPO, {"model.pth": blob("m")})
    entries = [
        entry("gone", blob("g"), filename="gone.pth"),
        entry("badrev", blob("m"), filename="model.pth", revision="no-such-branch"),
    ]
    store = store_for(tmp_path, entries, hub)
    with pytest.raises(WeightsError, match="RemoteEntryNotFoundError") as caught:
        store.resolve("gone")
    assert not isinstance(caught.value, WeightsMissingError)
    with pytest.raises(WeightsError, match="RevisionNotFoundError"):
        store.resolve("badrev")


# --------------------------------------------------------------------------------------- stamps
def test_second_start_neither_downloads_nor_rehashes(
    tmp_path: Path, hub: FakeHub, hash_calls: list[Path]
) -> None:
    data = blob("m")
    hub.commit(REPO, {"model.pth": data})
    manifest = [entry("model", data, filename="model.pth")]
    first = store_for(tmp_path, manifest, hub).resolve("model")
    assert (hub.count("HEAD"), hub.count("GET"), len(hash_calls)) == (1, 1, 1)

    restarted = store_for(tmp_path, manifest, hub)
    assert restarted.status("model") is WeightStatus.VERIFIED
    assert restarted.resolve("model") == first
    assert restarted.is_available("model")
    assert (hub.count(), len(hash_calls)) == (2, 1)

    stamps = json.loads((tmp_path / "cache" / weights.STAMPS_FILENAME).read_text())["files"]
    assert stamps[str(first.resolve())]["sha256"] == hashlib.sha256(data).hexdigest()

    # A file changed behind our back (new mtime) loses its stamp and is hashed again.
    stat = first.resolve().stat()
    os.utime(first.resolve(), ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert store_for(tmp_path, manifest, hub).status("model") is WeightStatus.PRESENT
    store_for(tmp_path, manifest, hub).resolve("model")
    assert len(hash_calls) == 2 and hub.count() == 2


def test_unreadable_stamp_file_means_hashing_again(tmp_path: Path, hash_calls: list[Path]) -> None:
    data = blob("m")
    bundled = tmp_path / "bundled" / "m.pth"
    bundled.parent.mkdir()
    bundled.write_bytes(data)
    stamps = tmp_path / "state" / weights.STAMPS_FILENAME
    stamps.parent.mkdir()
    stamps.write_text("{not json")
    store = store_for(tmp_path, [entry("m", data)], state_dir=tmp_path / "state")
    assert store.resolve("m") == bundled and len(hash_calls) == 1
    assert json.loads(stamps.read_text())["files"][str(bundled.resolve())]["size"] == len(data)
    assert not (tmp_path / "cache").exists()  # an explicit state_dir keeps stamps out of the cache


# --------------------------------------------------------------------------------------- offline
def test_offline_with_a_filled_cache_works(tmp_path: Path, hub: FakeHub) -> None:
    data = blob("m")
    hub.commit(REPO, {"model.pth": data})
    manifest = [entry("model", data, filename="model.pth")]
    store_for(tmp_path, manifest, hub).pull()
    requests = hub.count()

    def no_network(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("offline store called the downloader")

    offline = store_for(tmp_path, manifest, offline=True, downloader=no_network)
    assert offline.resolve("model").read_bytes() == data
    assert offline.pull() == [offline.resolve("model")]
    assert hub.count() == requests


def test_offline_with_an_empty_cache_names_file_and_command(tmp_path: Path, hub: FakeHub) -> None:
    data = blob("m")
    hub.commit(REPO, {"model.pth": data})
    store = store_for(tmp_path, [entry("model", data, filename="model.pth")], hub, offline=True)
    with pytest.raises(WeightsMissingError) as caught:
        store.resolve("model")
    assert "model.pth" in str(caught.value) and f"{PULL} model" in str(caught.value)
    assert not store.is_available("model")
    assert store.status("model") is WeightStatus.MISSING
    assert hub.count() == 0


def test_hub_offline_mode_in_the_client_is_reported_as_missing(
    tmp_path: Path, hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real client with HF_HUB_OFFLINE on raises LocalEntryNotFoundError, as when the Hub is unreachable."""
    data = blob("m")
    hub.commit(REPO, {"model.pth": data})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    store = store_for(tmp_path, [entry("model", data, filename="model.pth")], hub)
    with pytest.raises(WeightsMissingError, match=f"could not be reached.*{PULL} model"):
        store.resolve("model")
    assert hub.count() == 0


def test_pull_reports_every_missing_file_at_once(tmp_path: Path) -> None:
    store = store_for(tmp_path, [entry("a", blob("a")), entry("b", blob("b"))], offline=True)
    with pytest.raises(WeightsMissingError, match=f"a.pth .*b.pth .*{PULL} a b$"):
        store.pull()


# --------------------------------------------------------------------------------------- bundled
def test_bundled_file_wins_over_the_cache(tmp_path: Path, hub: FakeHub) -> None:
    data = blob("m")
    hub.commit(REPO, {"model.safetensors": data})
    e = entry("model", data, filename="model.safetensors", local_name="model.safetensors", bundled=True)
    cached = store_for(tmp_path, [e], hub, bundled_dir=tmp_path / "empty").resolve("model")
    bundled = tmp_path / "bundled" / "model.safetensors"
    bundled.parent.mkdir()
    bundled.write_bytes(data)
    requests = hub.count()
    store = store_for(tmp_path, [e], hub)
    assert store.local_path("model") == bundled
    assert store.resolve("model") == bundled != cached
    assert hub.count() == requests


def test_corrupt_bundled_file_is_refused_and_kept(tmp_path: Path, hub: FakeHub) -> None:
    data = blob("m")
    hub.commit(REPO, {"model.safetensors": data})
    bundled = tmp_path / "bundled" / "model.safetensors"
    bundled.parent.mkdir()
    bundled.write_bytes(blob("rotten"))
    store = store_for(tmp_path, [entry("model", data, filename="model.safetensors", bundled=True)], hub)
    with pytest.raises(WeightsIntegrityError, match="bundled file was left in place and refused") as caught:
        store.resolve("model")
    assert hashlib.sha256(data).hexdigest() in str(caught.value)
    assert bundled.read_bytes() == blob("rotten")
    assert not store.is_available("model")
    assert hub.count() == 0


def test_verify_rehashes_and_reports_each_file(tmp_path: Path, hub: FakeHub, hash_calls: list[Path]) -> None:
    good, other = blob("good"), blob("other")
    hub.commit(REPO, {"good.pth": good, "other.pth": other})
    entries = [entry("good", good), entry("other", other), entry("absent", blob("x"))]
    store = store_for(tmp_path, entries, hub)
    store.pull(["good", "other"])
    other_blob = store.resolve("other").resolve()
    other_blob.chmod(0o644)
    other_blob.write_bytes(blob("bitrot"))  # same size, different bytes
    hashed = len(hash_calls)

    results = store.verify()
    assert {k: r.status for k, r in results.items()} == {
        "good": WeightStatus.VERIFIED,
        "other": WeightStatus.CORRUPT,
        "absent": WeightStatus.MISSING,
    }
    assert len(hash_calls) == hashed + 2  # verify ignores stamps
    assert not other_blob.exists()
    assert f"{PULL} absent" in results["absent"].message


# --------------------------------------------------------------------------------------- loading
def test_loaders_read_verified_files_and_refuse_pickled_code(tmp_path: Path, hub: FakeHub) -> None:
    import pickle

    import torch
    from safetensors.torch import save as save_safetensors

    tensors = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    st_bytes = save_safetensors(tensors)
    ckpt = tmp_path / "ckpt.pth"
    torch.save({"params": {"b": torch.ones(2)}}, ckpt)
    evil = tmp_path / "evil.pth"
    torch.save({"x": torch.ones(1), "payload": _Payload()}, evil)
    hub.commit(REPO, {"m.safetensors": st_bytes, "m.pth": ckpt.read_bytes(), "evil.pth": evil.read_bytes()})
    entries = [
        entry("st", st_bytes, filename="m.safetensors", fmt="safetensors"),
        entry("pt", ckpt.read_bytes(), filename="m.pth"),
        entry("evil", evil.read_bytes(), filename="evil.pth"),
    ]
    store = store_for(tmp_path, entries, hub)
    assert torch.equal(weights.load_safetensors(store.resolve("st"))["w"], tensors["w"])
    assert torch.equal(weights.load_torch_checkpoint(store.resolve("pt"))["params"]["b"], torch.ones(2))
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        weights.load_torch_checkpoint(store.resolve("evil"))


class _Payload:
    """An arbitrary class: loading it needs full unpickling, which weights_only refuses."""


# --------------------------------------------------------------------------------------- command line
def test_cli_list_pull_verify(tmp_path: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]) -> None:
    a, b, c = blob("a"), blob("b"), blob("c")
    hub.commit(REPO, {"a.pth": a, "b.pth": b})
    manifest = write_manifest(
        tmp_path / "weights" / "manifest.json",
        [entry("a", a), entry("b", b), entry("c", c, bundled=True, fmt="safetensors")],
    )
    (tmp_path / "weights" / "c.safetensors").write_bytes(c)  # bundled next to the manifest
    common = ["--manifest", str(manifest), "--cache-dir", str(tmp_path / "cache"), "--endpoint", hub.endpoint]

    assert run_cli("weights", "list", *common) == 0
    rows = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows == {"a": "missing", "b": "missing", "c": "present"}

    assert run_cli("weights", "pull", "a", *common) == 0
    assert "verified  a" in capsys.readouterr().out
    assert run_cli("weights", "list", *common, "--offline") == 0
    rows = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows == {"a": "verified", "b": "missing", "c": "present"}

    assert run_cli("weights", "verify", *common) == ExitCode.PARTIAL  # b is missing
    out = capsys.readouterr().out
    assert re.search(r"^c\s+verified\s+bundled: ", out, re.M) and re.search(r"^b\s+missing\s", out, re.M)

    assert run_cli("weights", "pull", *common, "--offline") == ExitCode.FAILED
    last = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert last.startswith("error: weight file(s) not available") and last.endswith(f"{PULL} b")
    assert run_cli("weights", "pull", *common) == 0
    assert run_cli("weights", "verify", *common) == 0


def test_cli_offline_default_comes_from_hf_hub_offline() -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())

    def offline(argv: list[str], env: dict[str, str]) -> bool:
        return build_settings(vars(parser.parse_args(argv)), env).offline

    for word in ("1", "true", "YES", "on"):
        assert offline(["weights", "list"], {"HF_HUB_OFFLINE": word}) is True
    assert offline(["weights", "list"], {"HF_HUB_OFFLINE": "0"}) is False
    assert offline(["weights", "list"], {}) is False
    assert offline(["weights", "list", "--no-offline"], {"HF_HUB_OFFLINE": "1"}) is False
    assert offline(["weights", "list", "--offline"], {}) is True


def test_cli_lock_pins_revisions_to_commits(
    tmp_path: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = blob("old"), blob("new")
    first = hub.commit(REPO, {"a.pth": old})
    hub.tag(REPO, "v1", first)
    other = hub.commit("org/other", {"b.pth": blob("b")})
    entries = [
        entry("a", old, revision="v1"),
        entry("b", blob("b"), repo_id="org/other"),
        entry("c", old, revision=first),
    ]
    manifest = write_manifest(tmp_path / "manifest.json", entries)

    assert run_cli("weights", "lock", "--manifest", str(manifest), "--endpoint", hub.endpoint) == 0
    locked = load_manifest(manifest)
    assert [e.revision for e in locked] == [first, other, first]
    assert all(re.fullmatch(r"[0-9a-f]{40}", e.revision) for e in locked)
    assert "a: v1 -> " + first in capsys.readouterr().out
    assert hub.count("GET", contains="/api/models/") == 2  # c was already pinned

    hub.commit(REPO, {"a.pth": new})
    hub.tag(REPO, "v1", hub.repos[REPO].refs["main"])  # even the tag moves: the lock still holds
    assert store_for(tmp_path, locked, hub).resolve("a").read_bytes() == old


def test_cli_lock_reports_unknown_revision_and_leaves_manifest(
    tmp_path: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.commit(REPO, {"a.pth": blob("a")})
    manifest = write_manifest(tmp_path / "manifest.json", [entry("a", blob("a"), revision="nope")])
    before = manifest.read_text()
    assert run_cli("weights", "lock", "--manifest", str(manifest), "--endpoint", hub.endpoint) == ExitCode.FAILED
    assert "cannot resolve org/weights@nope" in capsys.readouterr().err
    assert manifest.read_text() == before
    assert run_cli("weights", "lock", "--manifest", str(manifest), "--offline") == ExitCode.REFUSED


CARD = {
    "data": "DIV2K + synthetic scratches",
    "training_command": "python -m restorer.train scratch --epochs 40",
    "metrics": {"PSNR": 31.2, "LPIPS": 0.081},
    "seed": 1234,
}


def _publishable(tmp_path: Path) -> tuple[Path, bytes, bytes]:
    s1, s2 = blob("scratch"), blob("colour")
    manifest = write_manifest(
        tmp_path / "weights" / "manifest.json",
        [
            entry("scratch", s1, fmt="safetensors", bundled=True, repo_id="restorer-app/restorer-weights", card=CARD),
            entry(
                "colour",
                s2,
                filename="colour/colour.safetensors",
                fmt="safetensors",
                bundled=True,
                repo_id="restorer-app/restorer-weights",
            ),
            entry("third", blob("t"), repo_id="someone/else"),
        ],
    )
    (tmp_path / "weights" / "scratch.safetensors").write_bytes(s1)
    (tmp_path / "weights" / "colour.safetensors").write_bytes(s2)
    return manifest, s1, s2


def test_cli_publish_dry_run_writes_exact_file_set_and_card(tmp_path: Path) -> None:
    manifest, s1, s2 = _publishable(tmp_path)
    out = tmp_path / "out"
    argv = ["weights", "publish", "--manifest", str(manifest), "--repo-id", "restorer-app/restorer-weights"]
    assert run_cli(*argv, "--dry-run", "--out", str(out)) == 0
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["README.md", "colour/colour.safetensors", "scratch.safetensors"]
    assert (out / "scratch.safetensors").read_bytes() == s1
    assert (out / "colour" / "colour.safetensors").read_bytes() == s2

    card = (out / "README.md").read_text()
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert "license: mit" in front and "library_name: restorer" in front and "- safetensors" in front
    for section in ("## scratch", "## colour", "### Data", "### Training command", "### Metrics", "### Licence"):
        assert section in body
    assert CARD["training_command"] in body and "| PSNR | 31.2 |" in body and "Seed: `1234`" in body
    assert hashlib.sha256(s1).hexdigest() in body

    assert run_cli(*argv, "--dry-run", "--out", str(out)) == ExitCode.REFUSED  # not empty any more
    assert run_cli(*argv, "--dry-run") == ExitCode.REFUSED  # --out missing


def test_cli_publish_refuses_a_corrupt_bundled_file(tmp_path: Path) -> None:
    manifest, _, _ = _publishable(tmp_path)
    (tmp_path / "weights" / "colour.safetensors").write_bytes(blob("changed"))
    argv = ["weights", "publish", "--manifest", str(manifest), "--repo-id", "x/y", "--dry-run"]
    assert run_cli(*argv, "--out", str(tmp_path / "out")) == ExitCode.FAILED
    assert not (tmp_path / "out").exists()


def test_cli_publish_uploads_tags_and_records_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, _, _ = _publishable(tmp_path)
    commit = "c" * 40
    calls: list[tuple[str, Any]] = []

    class FakeApi:
        """Stands in for HfApi: the Hub upload protocol is not part of tests/hub_server.py."""

        def __init__(self, endpoint: str | None = None) -> None:
            calls.append(("endpoint", endpoint))

        def create_repo(self, repo_id: str, **kwargs: Any) -> None:
            calls.append(("create_repo", repo_id))

        def upload_folder(self, *, repo_id: str, folder_path: Path, commit_message: str) -> Any:
            uploaded = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file())
            calls.append(("upload_folder", (repo_id, uploaded)))
            return argparse.Namespace(oid=commit)

        def create_tag(self, repo_id: str, *, tag: str, revision: str) -> None:
            calls.append(("create_tag", (repo_id, tag, revision)))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)  # restorer.weights.hub imports it on use
    argv = ["weights", "publish", "--manifest", str(manifest), "--repo-id", "me/w", "--tag", "v3"]
    assert run_cli(*argv, "--endpoint", "http://hub.invalid") == 0
    assert calls == [
        ("endpoint", "http://hub.invalid"),
        ("create_repo", "me/w"),
        ("upload_folder", ("me/w", ["README.md", "colour/colour.safetensors", "scratch.safetensors"])),
        ("create_tag", ("me/w", "v3", commit)),
    ]
    published = {e.id: (e.repo_id, e.revision) for e in load_manifest(manifest)}
    assert published == {"scratch": ("me/w", commit), "colour": ("me/w", commit), "third": ("someone/else", "main")}
