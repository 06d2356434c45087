"""One photo restored from a file into files: the job the CLI and batch runs repeat.

Every output path is checked before any work (:func:`check_outputs`); the photo, its mask and
its report are then encoded in memory and written all or nothing (restorer.files.write_all),
so a failed or interrupted job leaves nothing behind and never touches an input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from restorer import files
from restorer.errors import OutputPathError, PlanError
from restorer.imaging import (ImageLimits, check_output_extension, encode_image, encode_mask,
                              load_mask, load_photo)
from restorer.pipeline import Pipeline
from restorer.planner import MASK_MODES, PlannedStage, plan_manual
from restorer.result import RestoreResult

__all__ = ["Outputs", "JobSettings", "check_outputs", "restore_file"]


@dataclass(frozen=True)
class Outputs:
    """Where one photo's results go: the restored ``image`` and, optionally, the defect
    ``mask`` used (white = defect) and the JSON ``report``."""

    image: Path
    mask: Path | None = None
    report: Path | None = None

    def paths(self) -> list[tuple[str, Path]]:
        """(flag, path) of each output asked for."""
        named = [("-o", self.image), ("--mask-out", self.mask), ("--report", self.report)]
        return [(flag, path) for flag, path in named if path is not None]


@dataclass(frozen=True)
class JobSettings:
    """How to restore: ``stages`` None is Auto, else Manual with those stages in order;
    ``options`` (stage id -> {name: value}) apply whenever those stages run; ``mask`` is a
    user's mask file, used by ``mask_mode`` (planner.MASK_MODES); ``bits`` "same" writes
    16 bits for a 16-bit input where the format allows it, 8 always 8 bits; ``colourise``: Auto
    ends with colourisation (off by default); ``crop_to_print``: the photo and the mask written
    are cut to the print when a mount is found (off by default)."""

    stages: tuple[PlannedStage, ...] | None = None
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    mask: Path | None = None
    mask_mode: str = "replace"
    limits: ImageLimits = ImageLimits()
    bits: str = "same"
    colourise: bool = False
    crop_to_print: bool = False

    def __post_init__(self) -> None:
        if self.mask_mode not in MASK_MODES:
            raise PlanError(f"unknown mask mode '{self.mask_mode}': use "
                            f"{' or '.join(MASK_MODES)}")
        if self.bits not in ("same", "8"):
            raise PlanError(f"unknown output depth '{self.bits}': use same or 8")


def check_outputs(inputs: Sequence[Path], outputs: Outputs) -> None:
    """Refuse, before any work, output paths that cannot or must not be written.

    Each output must not be a folder; its folder is created when missing and must be
    writable; the photo and mask need a writable extension; the outputs are distinct from
    each other and from every input (through symlinks and hard links too), so an original is
    never overwritten. Raises OutputPathError naming the path.
    """
    seen: dict[Path, str] = {}
    for flag, path in outputs.paths():
        if path.is_dir():
            raise OutputPathError(f"{flag} '{path}' is a folder: give a file name")
        if flag != "--report":
            try:
                check_output_extension(path)
            except OutputPathError as exc:
                raise OutputPathError(f"{flag}: {exc}") from None
        for source in inputs:
            if files.same_file(path, source):
                raise OutputPathError(f"{flag} '{path}' is the input '{source}': choose another "
                                      "name, the original is never overwritten")
        key = path.resolve()
        if key in seen:
            raise OutputPathError(f"{seen[key]} and {flag} are the same file '{path}': give "
                                  "each output its own name")
        seen[key] = flag
    for folder in dict.fromkeys(path.parent for _, path in outputs.paths()):
        files.check_writable_folder(folder, create=True)


def restore_file(pipeline: Pipeline, source: Path, outputs: Outputs,
                 settings: JobSettings) -> RestoreResult:
    """Restore the photo at ``source`` into ``outputs`` (checked with :func:`check_outputs`
    first) under ``settings``; returns the run's result. Nothing is written unless all of
    the photo, mask and report are."""
    check_outputs([source] + ([settings.mask] if settings.mask else []), outputs)
    photo = load_photo(source, limits=settings.limits)
    mask = None if settings.mask is None else load_mask(
        settings.mask, shape=photo.image.shape[:2], limits=settings.limits)
    plan = None
    if settings.stages is not None:
        specs = {s.id: s for s in pipeline.registry.specs()}
        plan = plan_manual(settings.stages, specs, has_mask=mask is not None)
    result = pipeline.run(photo.image, plan, mask=mask, mask_mode=settings.mask_mode,
                          options=settings.options, colourise=settings.colourise,
                          crop_to_print=settings.crop_to_print)
    bits = photo.bits if settings.bits == "same" else 8
    written = [(outputs.image, encode_image(result.image, outputs.image.suffix.lower(),
                                            bits=bits, grey=photo.grey and not result.colourised))]
    if outputs.mask is not None:
        used = result.mask if result.inpainted and result.mask is not None else None
        if used is None:
            used = np.zeros(result.image.shape[:2], bool)
        elif result.crop is not None:  # cut like the photo, so that the two line up
            used = result.crop.apply(used)
        written.append((outputs.mask, encode_mask(used, outputs.mask.suffix.lower())))
    if outputs.report is not None:
        report = {"input": str(source), "output": str(outputs.image),
                  "mask_input": None if settings.mask is None else str(settings.mask),
                  "mask_mode": settings.mask_mode if settings.mask is not None else None,
                  "colour_profile_converted": photo.profile,
                  "bits": bits, **result.report()}
        written.append((outputs.report, json.dumps(report, indent=2).encode("utf-8")))
    files.write_all(written)
    return result
