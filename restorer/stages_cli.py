"""``python -m restorer stages``: every registered stage, whether it can run here, and why not.

A stage is available when its weight files are present and verified and it has not failed to
build; ``--build`` builds each available stage (loading its models) to check that it really
does, so a file that verifies but does not load shows as "failed to build" with the error.
The table names the licences of the stage's published weight files (the project's own,
bundled ones are listed with theirs in ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any

from restorer.errors import ExitCode, StageUnavailableError
from restorer.weights_cli import add_store_flags

if TYPE_CHECKING:
    from restorer.weights import Manifest

__all__ = ["add_parser", "stage_rows", "format_rows"]


def add_parser(commands: Any) -> None:
    """Add the ``stages`` subcommand to the CLI's subparsers."""
    parser = commands.add_parser(
        "stages", help="list every stage, whether it can run here and why not",
        description="List every registered stage: kind, available or not and why (missing "
                    "file, hash mismatch, failed build), licence of its weights.")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--build", action="store_true",
                        help="build each available stage (loads its models) to check it builds")
    parser.add_argument("--device", default=None, help="where learned stages are built (--build)")
    add_store_flags(parser)
    parser.set_defaults(func=_cmd_stages)


def stage_rows(pipeline: Any, manifest: Manifest | None, *,
               build: bool = False) -> list[dict[str, Any]]:
    """One JSON-ready row per registered stage of ``pipeline``: id, kind, title, available,
    built, reason (None when available) and the weights with their licences and whether they
    are published (not bundled) from ``manifest`` (None: unknown). ``build``: build every
    available stage first (a failure becomes its reason)."""

    def weight(weight_id: str) -> dict[str, Any]:
        entry = manifest.get(weight_id) if manifest and weight_id in manifest.ids else None
        return {"id": weight_id, "licence": entry.licence if entry else None,
                "published": None if entry is None else not entry.bundled}

    registry = pipeline.registry
    if build:
        for spec in registry.specs():
            if registry.is_available(spec.id):
                try:
                    registry.build(spec.id)
                except StageUnavailableError:
                    pass  # the registry keeps the reason; the row shows it
    rows = []
    for status in registry.status():
        spec = registry.spec(status.id)
        rows.append({"id": status.id, "kind": status.kind, "title": spec.title,
                     "available": status.available, "built": status.built,
                     "reason": status.reason,
                     "weights": [weight(w) for w in spec.weights]})
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The rows as a plain-text table (one line per stage, the reason last)."""
    lines = [f"{'stage':<18} {'kind':<8} {'status':<12} licence / why not"]
    for row in rows:
        state = "available" if row["available"] else "unavailable"
        if row["built"]:
            state = "built"
        licences = "; ".join(dict.fromkeys(w["licence"] or "unknown" for w in row["weights"]
                                           if w["published"] is not False))
        detail = row["reason"] or licences or ("bundled weights" if row["weights"] else "-")
        if row["reason"] and licences:
            detail = f"{row['reason']} [licence: {licences}]"
        lines.append(f"{row['id']:<18} {row['kind']:<8} {state:<12} {detail}")
    return "\n".join(lines)


def _cmd_stages(args: argparse.Namespace) -> int:
    from restorer.service import build_pipeline, build_store
    from restorer.settings import build_settings

    config = build_settings(vars(args), os.environ)  # the edge: flags, then the environment
    rows = stage_rows(build_pipeline(config), build_store(config).manifest, build=args.build)
    print(json.dumps(rows, indent=1) if args.json else format_rows(rows))
    return ExitCode.DONE
