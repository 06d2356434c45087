"""``python -m restorer weights ...``: list, pull, verify, lock and publish the manifest's weight files.

``restorer/cli.py`` calls :func:`add_parser` and dispatches ``args.func(args)``; each handler
returns an exit code and prints expected errors (:class:`RestorerError`) as one line on stderr.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import HfApi

from restorer.errors import RestorerError, WeightsError
from restorer.weights import (
    Manifest,
    WeightStatus,
    WeightStore,
    default_manifest_path,
    load_manifest,
    lock_manifest,
    publish_bundled,
    stage_publish,
)

__all__ = ["add_parser"]

Handler = Callable[[argparse.Namespace], int]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``weights`` command and its subcommands to ``subparsers``."""
    parser = subparsers.add_parser(
        "weights",
        help="list, download, verify, lock or publish weight files",
        description="Manage the weight files listed in weights/manifest.json (see docs/weights.md).",
    )
    commands = parser.add_subparsers(dest="weights_command", metavar="COMMAND", required=True)
    common = _common_options()

    sub = commands.add_parser("list", parents=[common],
                              help="show each entry: verified / present / missing / unhashed, and unlocked revisions")
    sub.set_defaults(func=_errors_to_exit_code(_list))

    sub = commands.add_parser("pull", parents=[common], help="download (if needed) and verify weight files")
    sub.add_argument("ids", nargs="*", metavar="ID", help="entries to pull (default: all)")
    sub.set_defaults(func=_errors_to_exit_code(_pull))

    sub = commands.add_parser("verify", parents=[common], help="hash local weight files again")
    sub.add_argument("ids", nargs="*", metavar="ID", help="entries to verify (default: all)")
    sub.set_defaults(func=_errors_to_exit_code(_verify))

    sub = commands.add_parser("lock", parents=[common],
                              help="pin branch/tag revisions to commit ids, record the Hub's sha256 of unhashed files (network)")
    sub.set_defaults(func=_errors_to_exit_code(_lock))

    sub = commands.add_parser("publish", parents=[common], help="upload bundled weights with a model card")
    sub.add_argument("--repo-id", required=True, help="Hub model repo, e.g. restorer-app/restorer-weights")
    sub.add_argument("--tag", help="tag the new commit, e.g. v3")
    sub.add_argument("--message", help="commit message")
    sub.add_argument("--dry-run", action="store_true", help="write the files to --out instead of uploading")
    sub.add_argument("--out", type=Path, metavar="DIR", help="empty folder for --dry-run output")
    sub.set_defaults(func=_errors_to_exit_code(_publish))


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--manifest", type=Path, metavar="PATH", help="manifest file (default: weights/manifest.json)")
    common.add_argument(
        "--weights-dir", type=Path, metavar="PATH", help="folder of bundled files (default: the manifest's folder)"
    )
    common.add_argument(
        "--cache-dir", type=Path, metavar="PATH", help="Hugging Face cache folder (default: the Hub's, HF_HUB_CACHE)"
    )
    common.add_argument(
        "--state-dir", type=Path, metavar="PATH", help="folder of the verified-stamp file (default: the cache folder)"
    )
    common.add_argument(
        "--offline",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"},
        help="never use the network (default: on when HF_HUB_OFFLINE=1)",
    )
    common.add_argument("--endpoint", metavar="URL", help="Hub endpoint (default: HF_ENDPOINT or huggingface.co)")
    return common


def _errors_to_exit_code(handler: Handler) -> Handler:
    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except RestorerError as error:
            print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
            return 1

    return run


def _manifest_path(args: argparse.Namespace) -> Path:
    return args.manifest if args.manifest is not None else default_manifest_path()


def _bundled_dir(args: argparse.Namespace) -> Path:
    return args.weights_dir if args.weights_dir is not None else _manifest_path(args).parent


def _store(args: argparse.Namespace, manifest: Manifest) -> WeightStore:
    return WeightStore(
        manifest,
        bundled_dir=_bundled_dir(args),
        cache_dir=args.cache_dir,
        state_dir=args.state_dir,
        offline=args.offline,
        endpoint=args.endpoint,
    )


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _require_network(args: argparse.Namespace, command: str) -> None:
    if args.offline:
        raise WeightsError(f"`weights {command}` needs the network; run it without --offline and HF_HUB_OFFLINE=1")


def _list(args: argparse.Namespace) -> int:
    manifest = load_manifest(_manifest_path(args))
    store = _store(args, manifest)
    rows = [("ID", "STATUS", "SIZE", "REVISION", "FILE")]
    for entry in manifest:
        size = "?" if entry.size is None else _human_size(entry.size)
        revision = entry.revision if entry.is_pinned else f"{entry.revision} (unlocked: run `weights lock`)"
        rows.append((entry.id, str(store.status(entry.id)), size, revision, entry.local_name))
    _print_table(rows)
    return 0


def _pull(args: argparse.Namespace) -> int:
    manifest = load_manifest(_manifest_path(args))
    paths = _store(args, manifest).pull(args.ids)
    for entry, path in zip(manifest.select(args.ids), paths, strict=True):
        print(f"verified  {entry.id}  {path}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    manifest = load_manifest(_manifest_path(args))
    results = _store(args, manifest).verify(args.ids)
    _print_table([("ID", "STATUS", "DETAIL")] + [(r.id, str(r.status), r.message) for r in results.values()])
    return 0 if all(r.status is WeightStatus.VERIFIED for r in results.values()) else 1


def _lock(args: argparse.Namespace) -> int:
    _require_network(args, "lock")
    path = _manifest_path(args)
    manifest = load_manifest(path)
    locked = lock_manifest(manifest, api=HfApi(endpoint=args.endpoint))
    changed = [(old, new) for old, new in zip(manifest, locked, strict=True) if old != new]
    if not changed:
        print("every revision is already a commit id; manifest unchanged")
        return 0
    locked.save(path)
    for old, new in changed:
        print(f"{old.id}: {old.revision} -> {new.revision}")
        if not old.is_hashed:
            print(f"{old.id}: recorded the Hub's sha256 {new.sha256} ({new.size} bytes): check it against a second source")
    print(f"wrote {path}")
    return 0


def _publish(args: argparse.Namespace) -> int:
    path = _manifest_path(args)
    manifest = load_manifest(path)
    if args.dry_run != (args.out is not None):
        raise WeightsError("use --dry-run and --out DIR together (dry run: write the files to DIR, upload nothing)")
    if args.dry_run:
        written = stage_publish(manifest, bundled_dir=_bundled_dir(args), out_dir=args.out, repo_id=args.repo_id)
        for file in written:
            print(file)
        return 0
    _require_network(args, "publish")
    published = publish_bundled(
        manifest,
        bundled_dir=_bundled_dir(args),
        repo_id=args.repo_id,
        api=HfApi(endpoint=args.endpoint),
        tag=args.tag,
        commit_message=args.message,
    )
    published.save(path)
    commit = next(entry.revision for entry in published if entry.bundled)
    print(f"published {args.repo_id} at commit {commit}{f' (tag {args.tag})' if args.tag else ''}; wrote {path}")
    return 0
