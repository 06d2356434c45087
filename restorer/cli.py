"""Command line: ``python -m restorer restore IN -o OUT`` and ``python -m restorer weights ...``.

The flags of ``restore`` are the project's scripting interface: keep them stable.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from restorer import weights_cli
from restorer.backends import DEVICE_HELP, return_large_blocks_to_the_system
from restorer.errors import RestorerError
from restorer.imaging import ImageLimits, load_image, load_mask, save_image, save_mask
from restorer.pipeline import Pipeline, RestoreResult
from restorer.planner import PlannedStage, plan_manual
from restorer.service import DEVICE_ENV, ServiceConfig, build_pipeline
from restorer.stages.base import StageKind

__all__ = ["main", "build_parser", "parse_stages"]

log = logging.getLogger("restorer")

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".avif", ".bmp"})


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m restorer``."""
    parser = argparse.ArgumentParser(prog="python -m restorer",
                                     description="Restore old and damaged photographs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each stage")
    commands = parser.add_subparsers(dest="command", required=True)

    restore = commands.add_parser(
        "restore", help="restore one photo, or every photo of a folder into a folder",
        description="Restore IN into OUT. With a folder IN, OUT is a folder (created).")
    restore.add_argument("input", type=Path, help="photo file or folder of photos")
    restore.add_argument("-o", "--output", type=Path, required=True,
                         help="output file (.png, .jpg, .tif, .webp) or folder")
    restore.add_argument("--mode", choices=("auto", "manual"), default="auto",
                         help="auto: triage decides; manual: run --stages")
    restore.add_argument("--stages", default=None,
                         help="manual mode: comma list of KIND[:METHOD], e.g. "
                              "detect,inpaint:telea,deblur (kinds: detect, inpaint, deblur, face)")
    restore.add_argument("--set", dest="options", action="append", default=[],
                         metavar="STAGE.OPTION=VALUE",
                         help="stage option, e.g. detect.morph.sensitivity=0.7 (repeatable)")
    restore.add_argument("--mask", type=Path, default=None,
                         help="defect mask to use instead of detection (white = defect)")
    restore.add_argument("--mask-out", type=Path, default=None,
                         help="write the defect mask used (white = defect); a folder in batch mode")
    restore.add_argument("--report", type=Path, default=None,
                         help="write a JSON report; a folder in batch mode")
    restore.add_argument("--max-pixels", type=int, default=ImageLimits().max_pixels,
                         help="refuse photos larger than this many pixels")
    restore.add_argument("--device", default=None,
                         help=f"where torch stages (face) run: {DEVICE_HELP}; "
                              f"default: ${DEVICE_ENV}, else auto")
    restore.set_defaults(func=_cmd_restore)

    weights_cli.add_parser(commands)
    return parser


def parse_stages(text: str, pipeline: Pipeline, options: dict[str, dict[str, object]]) -> list[PlannedStage]:
    """``detect,inpaint:telea`` -> planned stages (default method per kind), with options."""
    registry = pipeline.registry
    defaults = {StageKind.DETECT.value: pipeline.auto.detect,
                StageKind.INPAINT.value: pipeline.auto.inpaint,
                StageKind.DEBLUR.value: "deblur.rl",
                StageKind.FACE.value: "face.gfpgan"}
    planned = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        kind, _, method = item.partition(":")
        if "." in kind:
            stage_id = kind
        elif method:
            stage_id = f"{kind}.{method}"
        elif kind in defaults:
            stage_id = defaults[kind]
        else:
            raise RestorerError(f"unknown stage kind '{kind}' in --stages; use "
                                f"{', '.join(defaults)} (optionally KIND:METHOD)")
        registry.spec(stage_id)
        planned.append(PlannedStage(stage_id, options.pop(stage_id, {})))
    return planned


def _parse_options(items: Sequence[str]) -> dict[str, dict[str, object]]:
    options: dict[str, dict[str, object]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        stage_id, _, name = key.rpartition(".")
        if not sep or not stage_id or not name:
            raise RestorerError(f"--set '{item}' must look like STAGE.OPTION=VALUE, "
                                "e.g. detect.morph.sensitivity=0.7")
        try:
            value: object = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options.setdefault(stage_id, {})[name] = value
    return options


def _write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _restore_one(args: argparse.Namespace, pipeline: Pipeline, source: Path, target: Path,
                 mask_out: Path | None, report_out: Path | None) -> RestoreResult:
    limits = ImageLimits(max_pixels=args.max_pixels)
    image = load_image(source, limits=limits)
    mask = None if args.mask is None else load_mask(args.mask, shape=image.shape[:2], limits=limits)
    options = _parse_options(args.options)
    plan = None
    if args.mode == "manual":
        if not args.stages:
            raise RestorerError("--mode manual needs --stages, e.g. --stages detect,inpaint")
        stages = parse_stages(args.stages, pipeline, options)
        specs = {s.id: s for s in pipeline.registry.specs()}
        plan = plan_manual(stages, specs, has_mask=mask is not None)
    elif args.stages:
        raise RestorerError("--stages is for --mode manual")
    if options:
        raise RestorerError(f"--set names stage(s) not in the plan: {', '.join(options)}")
    result = pipeline.run(image, plan, mask=mask)
    save_image(result.image, target)
    if mask_out is not None:
        used = result.mask if result.inpainted else None
        save_mask(np.zeros(result.image.shape[:2], bool) if used is None else used, mask_out)
    if report_out is not None:
        _write_json(report_out, {"input": str(source), "output": str(target), **result.report()})
    return result


def _cmd_restore(args: argparse.Namespace) -> int:
    config = ServiceConfig(offline=os.environ.get("HF_HUB_OFFLINE") == "1")
    if args.device is not None:
        config = replace(config, device=args.device)
    pipeline = build_pipeline(config)
    if args.input.is_dir():
        return _restore_folder(args, pipeline)
    if args.output.is_dir():
        raise RestorerError(f"'{args.output}' is a folder; give an output file name "
                            "(or a folder as input for batch mode)")
    result = _restore_one(args, pipeline, args.input, args.output, args.mask_out, args.report)
    label = result.triage.label if result.triage else "-"
    print(f"{args.output}: {label}; stages: {', '.join(result.plan.ids) or 'none'} "
          f"({sum(result.timings.values()):.2f} s)")
    return 0


def _restore_folder(args: argparse.Namespace, pipeline: Pipeline) -> int:
    from tqdm import tqdm

    if args.mask is not None:
        raise RestorerError("--mask applies to a single photo, not a folder")
    sources = sorted(p for p in args.input.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not sources:
        raise RestorerError(f"no photos ({', '.join(sorted(IMAGE_SUFFIXES))}) in '{args.input}'")
    for folder in (args.output, args.mask_out, args.report):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    failures = 0
    for source in tqdm(sources, desc="restoring", unit="photo"):
        target = args.output / f"{source.stem}.png"
        try:
            _restore_one(args, pipeline, source, target,
                         args.mask_out / f"{source.stem}.mask.png" if args.mask_out else None,
                         args.report / f"{source.stem}.json" if args.report else None)
        except RestorerError as exc:
            failures += 1
            tqdm.write(f"{source.name}: {exc}", file=sys.stderr)
    print(f"{len(sources) - failures} of {len(sources)} photos restored into {args.output}")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    return_large_blocks_to_the_system()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except RestorerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
