"""Command line: ``python -m restorer restore IN -o OUT`` and ``python -m restorer weights ...``.

The flags of ``restore`` are the project's scripting interface: keep them stable.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from restorer import files, stages_cli, weights_cli
from restorer.backends import DEVICE_HELP, return_large_blocks_to_the_system
from restorer.errors import ExitCode, OutputPathError, RestorerError, Terminated, exit_code
from restorer.planner import MASK_MODES
from restorer.settings import (DEFAULT_MAX_PIXELS, DEFAULT_TIME_BUDGET, DEVICE_ENV, PRECISION_ENV,
                               PRECISIONS, THREADS_ENV, Settings, build_settings)
from restorer.stage_ids import COLOUR_DDCOLOR, DEBLUR_RL, FACE_GFPGAN, TONE_RESTORE

if TYPE_CHECKING:  # the pipeline's modules import OpenCV and torch: only when a command runs
    from restorer.jobs import JobSettings, Outputs
    from restorer.pipeline import Pipeline
    from restorer.planner import PlannedStage
    from restorer.result import RestoreResult

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
    add_job_flags(restore)
    restore.add_argument("--mask", type=Path, default=None,
                         help="your defect mask: any non-black pixel (or, with transparency, "
                              "any opaque pixel) is a defect")
    restore.add_argument("--mask-mode", choices=MASK_MODES, default="replace",
                         help="replace: your --mask is used instead of detection (default); "
                              "union: detection runs too and either marks a defect")
    restore.add_argument("--mask-out", type=Path, default=None,
                         help="write the defect mask used (white = defect); a folder in batch mode")
    restore.add_argument("--report", type=Path, default=None,
                         help="write a JSON report; a folder in batch mode")
    restore.set_defaults(func=_cmd_restore)

    batch = commands.add_parser(
        "batch", help="restore an archive (a folder tree or a list of photos) on Ray, resumably",
        description="Restore every photo of SRC into DEST (mirroring SRC's tree) on an embedded "
                    "local Ray, or on a Ray cluster with --address; a ledger in DEST makes a "
                    "second run skip what is done. Needs pip install 'restorer[archive]'.")
    batch.add_argument("src", type=Path, help="folder tree of photos, or a text file of paths")
    batch.add_argument("dest", type=Path, help="output folder (created; holds the ledger)")
    batch.add_argument("--report-dir", type=Path, default=None,
                       help="write each photo's JSON report in this folder tree")
    add_job_flags(batch)
    batch.add_argument("--address", default=None,
                       help="Ray cluster to join: auto or ray://host:port (default: embedded)")
    batch.add_argument("--workers", type=int, default=None,
                       help="worker processes, each holding the models once "
                            "(default: the machine's or cluster's CPUs)")
    batch.add_argument("--gpus-per-worker", type=float, default=0.0,
                       help="GPUs each worker reserves, e.g. 0.5 (default 0)")
    batch.add_argument("--resume", action="store_true",
                       help="skip photos done with the same settings and bytes (always on; "
                            "the flag documents it)")
    batch.set_defaults(func=_cmd_batch, mask=None, mask_mode="replace")

    weights_cli.add_parser(commands)
    stages_cli.add_parser(commands)
    return parser


def add_job_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that say how each photo is restored, shared by ``restore`` and ``batch``."""
    parser.add_argument("--mode", choices=("auto", "manual"), default="auto",
                        help="auto: triage decides; manual: run --stages")
    parser.add_argument("--stages", default=None,
                        help="manual mode: comma list of KIND[:METHOD], e.g. "
                             "detect,inpaint:telea,deblur (kinds: detect, inpaint, deblur, face)")
    parser.add_argument("--set", dest="options", action="append", default=[],
                        metavar="STAGE.OPTION=VALUE",
                        help="stage option, e.g. detect.morph.sensitivity=0.7 (repeatable)")
    parser.add_argument("--colourise", action="store_true",
                        help="auto: colourise a black-and-white or sepia photo at the end with "
                             "DDColor (off by default; needs 'weights pull ddcolor_paper_tiny'); "
                             "manual: list colour.ddcolor in --stages")
    parser.add_argument("--crop-to-print", action="store_true",
                        help="cut the output (and --mask-out) to the print when a card mount or "
                             "scanner bed is found round it; the report gives the box (off by "
                             "default; nothing is cut when no mount is found)")
    parser.add_argument("--bits", choices=("same", "8"), default="same",
                        help="same: a 16-bit scan comes back 16-bit in .png/.tif (default); "
                             "8: always 8 bits per channel")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="refuse photos larger than this many pixels")
    parser.add_argument("--device", default=None,
                        help=f"where the learned stages run: {DEVICE_HELP}; "
                             f"default: ${DEVICE_ENV}, else auto")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="learned stages' precision: auto (fp16/bf16 on CUDA where a model "
                             "is declared safe in it, else fp32), fp32, fp16 or bf16 (CUDA only); "
                             f"default: ${PRECISION_ENV}, else auto")
    weights_cli.add_store_flags(parser)
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help=f"CPU threads torch and OpenCV may use (default: ${THREADS_ENV}, "
                             "else the libraries' own)")
    parser.add_argument("--time-budget", type=float, default=DEFAULT_TIME_BUDGET, metavar="S",
                        help="auto: seconds the published learned stages may take per photo; "
                             "those that would not fit are replaced by their classical "
                             f"fallbacks and the report says so (default {DEFAULT_TIME_BUDGET:g}; "
                             "inf: no budget)")


def parse_stages(text: str, pipeline: Pipeline, options: dict[str, dict[str, object]]) -> list[PlannedStage]:
    """``detect,inpaint:telea`` -> planned stages (default method per kind), with options."""
    from restorer.planner import PlannedStage
    from restorer.stages.base import StageKind

    registry = pipeline.registry
    defaults = {StageKind.DETECT.value: pipeline.auto.detect,
                StageKind.INPAINT.value: pipeline.auto.inpaint,
                StageKind.TONE.value: TONE_RESTORE,
                StageKind.DEBLUR.value: DEBLUR_RL,
                StageKind.FACE.value: FACE_GFPGAN,
                StageKind.COLOUR.value: COLOUR_DDCOLOR}
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


def _settings(args: argparse.Namespace, pipeline: Pipeline) -> JobSettings:
    """The job settings of ``restore``'s flags, every option checked before any work."""
    from restorer.imaging import ImageLimits
    from restorer.jobs import JobSettings
    from restorer.planner import plan_manual

    options = _parse_options(args.options)
    stages = None
    if args.mode == "manual":
        if not args.stages:
            raise RestorerError("--mode manual needs --stages, e.g. --stages detect,inpaint")
        if args.colourise:
            raise RestorerError("--colourise is for --mode auto; in manual mode add colour to "
                                "--stages, e.g. --stages detect,inpaint,colour")
        stages = tuple(parse_stages(args.stages, pipeline, options))
        specs = {s.id: s for s in pipeline.registry.specs()}
        pipeline.check_options(options, plan_manual(stages, specs, has_mask=True))
    elif args.stages:
        raise RestorerError("--stages is for --mode manual")
    else:
        pipeline.check_options(options)
    return JobSettings(stages=stages, options=options, mask=args.mask, mask_mode=args.mask_mode,
                       limits=ImageLimits(max_pixels=args.max_pixels), bits=args.bits,
                       colourise=args.colourise, crop_to_print=args.crop_to_print)


def command_settings(args: argparse.Namespace) -> Settings:
    """The settings of ``restore``'s or ``batch``'s flags and the environment (read here, at
    the edge, once per run)."""
    return build_settings(vars(args), os.environ)


def _summary(target: Path, result: RestoreResult) -> str:
    label = result.triage.headline if result.triage else "-"
    line = (f"{target}: {label}; stages: {', '.join(result.plan.ids) or 'none'} "
            f"({sum(result.timings.values()):.2f} s)")
    if result.mask_source:
        line += f"; mask: {result.mask_source}"
    if result.options_unused:
        line += f"; options not used (stage did not run): {', '.join(result.options_unused)}"
    if result.crop is not None:
        line += f"; {result.crop.note()}"
    return line


def _cmd_restore(args: argparse.Namespace) -> int:
    from restorer.jobs import Outputs, check_outputs, restore_file
    from restorer.service import build_pipeline

    config = command_settings(args)
    if args.input.is_dir():
        sources = _folder_photos(args)
    else:
        if args.output.is_dir():
            raise OutputPathError(f"'{args.output}' is a folder; give an output file name "
                                  "(or a folder as input for batch mode)")
        sources = []
        check_outputs([args.input] + ([args.mask] if args.mask else []),
                      Outputs(args.output, args.mask_out, args.report))
    pipeline = build_pipeline(config)
    settings = _settings(args, pipeline)
    if args.input.is_dir():
        return _restore_folder(args, pipeline, settings, sources)
    result = restore_file(pipeline, args.input, Outputs(args.output, args.mask_out, args.report),
                          settings)
    print(_summary(args.output, result))
    return ExitCode.DONE


def _folder_photos(args: argparse.Namespace) -> list[Path]:
    """The photos of ``args.input``, with the output folders checked (before any work)."""
    if args.mask is not None:
        raise RestorerError("--mask applies to a single photo, not a folder")
    try:
        sources = sorted(p for p in args.input.iterdir()
                         if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except OSError as exc:
        raise RestorerError(f"cannot list folder '{args.input}': {exc.strerror}") from None
    if not sources:
        raise RestorerError(f"no photos ({', '.join(sorted(IMAGE_SUFFIXES))}) in '{args.input}'")
    # One folder may hold all three: the names differ (.png, .mask.png, .json).
    for folder in (f for f in (args.output, args.mask_out, args.report) if f is not None):
        files.check_writable_folder(folder, create=True)
    return sources


def _folder_outputs(args: argparse.Namespace, source: Path, stems: set[str]) -> Outputs:
    """Output names of ``source`` in the output folders; a stem shared by two inputs
    (a.jpg, a.png) keeps the input's extension in the name (a.jpg.png)."""
    from restorer.jobs import Outputs

    stem = source.name if source.stem in stems else source.stem
    return Outputs(args.output / f"{stem}.png",
                   args.mask_out / f"{stem}.mask.png" if args.mask_out else None,
                   args.report / f"{stem}.json" if args.report else None)


def _restore_folder(args: argparse.Namespace, pipeline: Pipeline, settings: JobSettings,
                    sources: list[Path]) -> int:
    from tqdm import tqdm

    from restorer.jobs import restore_file

    counts: dict[str, int] = {}
    for source in sources:
        counts[source.stem] = counts.get(source.stem, 0) + 1
    shared = {stem for stem, n in counts.items() if n > 1}
    failures = 0
    for source in tqdm(sources, desc="restoring", unit="photo"):
        try:
            restore_file(pipeline, source, _folder_outputs(args, source, shared), settings)
        except RestorerError as exc:
            failures += 1
            tqdm.write(f"{source.name}: {exc}", file=sys.stderr)
    print(f"{len(sources) - failures} of {len(sources)} photos restored into {args.output}")
    if not failures:
        return ExitCode.DONE
    return ExitCode.FAILED if failures == len(sources) else ExitCode.PARTIAL


def _cmd_batch(args: argparse.Namespace) -> int:
    from restorer.archive.command import run_batch_command

    return run_batch_command(args, command_settings(args), _settings, print)


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    # TensorFlow's C++ start-up lines (absl, cpu_feature_guard) are not restorer's messages;
    # set here, at the edge, before anything imports TensorFlow.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # oneDNN's "custom operations are on" line is absl's, which the level above does not
    # reach on CPUs where oneDNN runs; with it off TensorFlow prints nothing at start.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    return_large_blocks_to_the_system()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted: stopped before finishing; no partial file was left", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Terminated:
        print("terminated: stopped before finishing; no partial file was left", file=sys.stderr)
        return ExitCode.TERMINATED
    except RestorerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    except OSError as exc:
        print(f"error: {exc.strerror or exc}"
              + (f": '{exc.filename}'" if exc.filename else ""), file=sys.stderr)
        return ExitCode.FAILED
    except Exception as exc:  # a bug: one line, not a traceback; -v logs the traceback
        log.debug("unexpected failure", exc_info=True)
        print(f"error: internal error ({type(exc).__name__}: {exc}); run again with -v and "
              "report it", file=sys.stderr)
        return ExitCode.FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)
