"""``python -m restorer weights ...``: list, pull, verify, lock and publish the manifest's weight files.

``restorer/cli.py`` calls :func:`add_parser` and dispatches ``args.func(args)``; each handler
builds the :class:`~restorer.settings.Settings` of its flags and the environment, works on the
same weight store as ``restore`` (:func:`~restorer.weights.build_store`), and returns an exit
code of :class:`~restorer.errors.ExitCode`; expected errors (:class:`RestorerError`) are raised
for ``cli.main`` to print as one line and map to the same codes as every other subcommand.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from restorer.errors import ExitCode, OutputPathError, RestorerError, WeightsError
from restorer.settings import Settings, build_settings
from restorer.weights import (
    Manifest,
    WeightEntry,
    WeightStatus,
    build_store,
    load_manifest,
    lock_manifest,
    publish_bundled,
    stage_publish,
)

__all__ = ["add_parser", "add_store_flags"]


def add_store_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that say which weight store a command uses (manifest, bundled folder, cache
    folder, stamp folder), the same for ``restore``, ``batch``, ``weights`` and the app: the
    folder ``weights pull --cache-dir X`` fills is the one ``restore --cache-dir X`` reads."""
    parser.add_argument("--manifest", type=Path, metavar="PATH",
                        help="manifest file (default: weights/manifest.json)")
    parser.add_argument("--weights-dir", type=Path, metavar="PATH",
                        help="folder of bundled files (default: the manifest's folder)")
    parser.add_argument("--cache-dir", type=Path, metavar="PATH",
                        help="Hugging Face cache folder that `weights pull` fills and `restore` "
                             "reads (default: $HF_HUB_CACHE, else $HF_HOME/hub, else "
                             "~/.cache/huggingface/hub)")
    parser.add_argument("--state-dir", type=Path, metavar="PATH",
                        help="folder of the verified-stamp file (default: the cache folder)")


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
    sub.set_defaults(func=_list)

    sub = commands.add_parser("pull", parents=[common], help="download (if needed) and verify weight files")
    sub.add_argument("ids", nargs="*", metavar="ID", help="entries to pull (default: all)")
    sub.set_defaults(func=_pull)

    sub = commands.add_parser("verify", parents=[common], help="hash local weight files again")
    sub.add_argument("ids", nargs="*", metavar="ID", help="entries to verify (default: all)")
    sub.set_defaults(func=_verify)

    sub = commands.add_parser("lock", parents=[common],
                              help="pin branch/tag revisions to commit ids, record the Hub's sha256 of unhashed files (network)")
    sub.set_defaults(func=_lock)

    sub = commands.add_parser("publish", parents=[common], help="upload bundled weights with a model card")
    sub.add_argument("--repo-id", required=True, help="Hub model repo, e.g. restorer-app/restorer-weights")
    sub.add_argument("--tag", help="tag the new commit, e.g. v3")
    sub.add_argument("--message", help="commit message")
    sub.add_argument("--dry-run", action="store_true", help="write the files to --out instead of uploading")
    sub.add_argument("--out", type=Path, metavar="DIR", help="empty folder for --dry-run output")
    sub.set_defaults(func=_publish)


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    add_store_flags(common)
    common.add_argument(
        "--offline",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="never use the network (default: on when HF_HUB_OFFLINE is 1, true, yes or on)",
    )
    common.add_argument("--endpoint", metavar="URL", help="Hub endpoint (default: HF_ENDPOINT or huggingface.co)")
    return common


def _settings(args: argparse.Namespace) -> Settings:
    """The settings of this command's flags and the environment (read here, at the edge)."""
    return build_settings(vars(args), os.environ)


def _select(manifest: Manifest, ids: list[str]) -> tuple[WeightEntry, ...]:
    """The entries named on the command line (all when none); an unknown id is a bad argument."""
    try:
        return manifest.select(ids)
    except WeightsError as error:
        raise RestorerError(str(error)) from None


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


def _require_network(settings: Settings, command: str) -> None:
    if settings.offline:
        raise RestorerError(f"`weights {command}` needs the network; run it without --offline and HF_HUB_OFFLINE=1")


def _list(args: argparse.Namespace) -> int:
    store = build_store(_settings(args))
    rows = [("ID", "STATUS", "SIZE", "REVISION", "FILE")]
    for entry in store.manifest:
        size = "?" if entry.size is None else _human_size(entry.size)
        revision = entry.revision if entry.is_pinned else f"{entry.revision} (unlocked: run `weights lock`)"
        rows.append((entry.id, str(store.status(entry.id)), size, revision, entry.local_name))
    _print_table(rows)
    return ExitCode.DONE


def _pull(args: argparse.Namespace) -> int:
    store = build_store(_settings(args))
    entries = _select(store.manifest, args.ids)
    paths = store.pull(args.ids)
    for entry, path in zip(entries, paths, strict=True):
        print(f"verified  {entry.id}  {path}")
    return ExitCode.DONE


def _verify(args: argparse.Namespace) -> int:
    store = build_store(_settings(args))
    _select(store.manifest, args.ids)
    results = store.verify(args.ids)
    _print_table([("ID", "STATUS", "DETAIL")] + [(r.id, str(r.status), r.message) for r in results.values()])
    verified = sum(r.status is WeightStatus.VERIFIED for r in results.values())
    if verified == len(results):
        return ExitCode.DONE
    return ExitCode.PARTIAL if verified else ExitCode.FAILED


def _lock(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _require_network(settings, "lock")
    manifest = load_manifest(settings.manifest)
    locked = lock_manifest(manifest, endpoint=settings.endpoint)
    changed = [(old, new) for old, new in zip(manifest, locked, strict=True) if old != new]
    if not changed:
        print("every revision is already a commit id; manifest unchanged")
        return ExitCode.DONE
    locked.save(settings.manifest)
    for old, new in changed:
        print(f"{old.id}: {old.revision} -> {new.revision}")
        if not old.is_hashed:
            print(f"{old.id}: recorded the Hub's sha256 {new.sha256} ({new.size} bytes): check it against a second source")
    print(f"wrote {settings.manifest}")
    return ExitCode.DONE


def _publish(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.dry_run != (args.out is not None):
        raise RestorerError("use --dry-run and --out DIR together (dry run: write the files to DIR, upload nothing)")
    if args.out is not None and args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise OutputPathError(f"publish output folder {args.out} is not empty; pass an empty or new folder")
    manifest = load_manifest(settings.manifest)
    if args.dry_run:
        written = stage_publish(manifest, bundled_dir=settings.bundled_dir, out_dir=args.out, repo_id=args.repo_id)
        for file in written:
            print(file)
        return ExitCode.DONE
    _require_network(settings, "publish")
    published = publish_bundled(
        manifest,
        bundled_dir=settings.bundled_dir,
        repo_id=args.repo_id,
        endpoint=settings.endpoint,
        tag=args.tag,
        commit_message=args.message,
    )
    published.save(settings.manifest)
    commit = next(entry.revision for entry in published if entry.bundled)
    print(f"published {args.repo_id} at commit {commit}{f' (tag {args.tag})' if args.tag else ''}; wrote {settings.manifest}")
    return ExitCode.DONE
