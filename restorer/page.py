"""What the web page shows and keeps, without the UI toolkit: notes, stage lists, Manual plans,
mask layers, and the upload and cache files (:mod:`restorer.page_files`, re-exported here;
app.py only lays the page out and wires it).

Images are float32 (H, W, 3) RGB in [0, 1] and masks bool (H, W), True = defect, except the
painted layers, which are the editor's RGBA uint8 (H, W, 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from restorer.errors import PlanError, RestorerError
from restorer.imaging import outline_boxes, overlay_mask
from restorer.page_files import CacheJanitor, SessionUploads, upload_path
from restorer.pipeline import Pipeline
from restorer.planner import Plan, PlannedStage, plan_manual
from restorer.result import RestoreResult
from restorer.stage_ids import COLOUR_DDCOLOR
from restorer.stages.base import StageKind, StageSpec, TriageResult

__all__ = ["KINDS", "MODES", "MODEL_COLUMNS", "CacheJanitor", "FaceChoice", "SessionUploads",
           "auto_colourise", "before_after", "colour_unavailable", "colourise_info", "label_values",
           "damage_labels", "editor_mask", "example_files", "manual_plan", "mask_layer",
           "model_rows", "parse_time_budget", "result_note", "result_overlay", "rounded",
           "stage_choices", "upload_path", "LEGEND", "legend_parts", "legend_note"]

#: The stage kinds Manual mode offers, in run order.
KINDS = ("detect", "inpaint", "deblur", "face", "colour")
MODES = ("Auto", "Manual")
MODEL_COLUMNS = ["model", "stage", "status", "licence", "size (MB)"]


@dataclass(frozen=True)
class FaceChoice:
    """The face controls of Manual mode."""

    stage_id: str | None
    fidelity: float
    faces: str
    min_size: float
    upscale: int | str

    def options(self) -> dict[str, Any]:
        """Stage options for the face stage, as sent (the stage's spec checks them)."""
        upscale = self.upscale
        if isinstance(upscale, str) and upscale.strip().isdigit():
            upscale = int(upscale)  # a radio button's value may arrive as text
        return {"fidelity": self.fidelity, "faces": self.faces,
                "min_size": 0 if self.min_size is None else self.min_size, "upscale": upscale}


# ----------------------------------------------------------------------------- stage lists
def stage_choices(pipeline: Pipeline, kind: StageKind) -> list[tuple[str, str]]:
    """Dropdown choices (label, stage id) of ``kind``; unavailable stages say why (the
    registry's reason)."""
    out = []
    for spec in pipeline.registry.specs(kind):
        reason = pipeline.registry.unavailable_reason(spec.id)
        label = spec.title if reason is None else f"{spec.title} (unavailable: {reason})"
        out.append((label, spec.id))
    return out


def manual_plan(specs: Mapping[str, StageSpec], kinds: Iterable[str], detect_id: str,
                sensitivity: float, inpaint_id: str, deblur_id: str, face: FaceChoice,
                has_mask: bool) -> Plan:
    """The Manual plan of the ticked ``kinds`` with the chosen stages; RestorerError names an
    unknown kind (PlanError an impossible plan)."""
    kinds = list(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise RestorerError(f"unknown stage kind '{unknown[0]}': use {', '.join(KINDS)}")
    chosen = {"detect": PlannedStage(detect_id, {"sensitivity": sensitivity}),
              "inpaint": PlannedStage(inpaint_id), "deblur": PlannedStage(deblur_id),
              "face": PlannedStage(face.stage_id, face.options()),
              "colour": PlannedStage(COLOUR_DDCOLOR)}
    return plan_manual([chosen[k] for k in KINDS if k in kinds], specs, has_mask=has_mask)


def colour_unavailable(pipeline: Pipeline) -> str | None:
    """Why Auto cannot colourise on this server (the registry's reason, as the Manual stage
    list gives it), None when it can."""
    if pipeline.auto.colour is not None:
        return pipeline.registry.unavailable_reason(pipeline.auto.colour)
    try:
        reason = pipeline.registry.unavailable_reason(COLOUR_DDCOLOR)
    except PlanError:  # a registry without the stage
        reason = "this server has no colourisation stage"
    return reason or "its model became usable after the server started: restart the server"


def colourise_info(pipeline: Pipeline) -> str:
    """The line under the page's Auto colourise checkbox: what it does, or why it cannot."""
    reason = colour_unavailable(pipeline)
    if reason is not None:
        return f"Unavailable: {reason}"
    return ("Auto: ends with DDColor colourisation (invented, plausible colours); shown with "
            "its own before/after. Manual: tick colour instead.")


def auto_colourise(pipeline: Pipeline, ticked: bool) -> bool:
    """Whether Auto ends with colourisation; RestorerError with the one-line reason when it is
    ticked and the stage cannot run here."""
    if not ticked:
        return False
    reason = colour_unavailable(pipeline)
    if reason is not None:
        raise RestorerError(f"Colourisation is unavailable: {reason}")
    return True


def parse_time_budget(value: Any) -> float:
    """The page's time budget in seconds (empty: no budget, inf); RestorerError when negative
    or not a number."""
    if value is None or value == "":
        return float("inf")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise RestorerError(f"the time budget must be a number of seconds, not '{value}'") from None
    if not seconds >= 0:
        raise RestorerError(f"the time budget must be 0 or more seconds, not {value}")
    return seconds


def model_rows(models: Any | None) -> list[list[Any]]:
    """The Models panel's rows (MODEL_COLUMNS) from a ``restorer.model_status.ModelStatus``:
    each manifest file's state, licence and size; one placeholder row when not tracked."""
    if models is None:
        return [["-", "-", "not tracked by this server", "-", None]]
    return [[r.id, r.stage, r.status, r.licence, r.size_mb] for r in models.rows()]


def example_files(folder: Path) -> tuple[list[Path], str]:
    """The page's example photos and their heading: the real photos of ``folder/real`` (made
    by ``examples/make_examples.py --real``; docs/examples.md) first when present, then the
    bundled ones with synthetic damage."""
    real = sorted(p for p in (folder / "real").glob("*")
                  if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    bundled = sorted(folder.glob("*.jpg"))
    if real:
        return real + bundled, ("Examples: real damaged photos taken before 1900 (public "
                                "domain), then scikit-image photos with synthetic damage")
    return bundled, "Examples (scikit-image photos with synthetic damage)"


# ----------------------------------------------------------------------------- results
def damage_labels(triage: TriageResult) -> str:
    """Each measured damage label with its own confidence (several may be high at once)."""
    if not triage.labels:
        return ""
    shown = ", ".join(f"{name} {p:.0%}" for name, p in triage.labels.items())
    return f" (independent labels: {shown})"


def label_values(triage: TriageResult) -> dict[str, float]:
    """The page's damage-label bars: each measured damage label with its own confidence in
    [0, 1] (independent: several may be high), or the four exclusive classes of a triage that
    measures no labels."""
    return dict(triage.labels) if triage.labels else dict(triage.confidences)


def before_after(result: RestoreResult) -> tuple[np.ndarray, np.ndarray]:
    """The whole run's (before, after), float32 (H, W, 3): the input (cut to the print like
    the result when it was cropped) and the result."""
    before = result.input if result.crop is None else result.crop.apply(result.input)
    return before, result.image


def result_note(result: RestoreResult) -> str:
    """The Markdown line above the results: triage, stages, mask share, notes, faces, the
    colourisation's before/after and the crop to the print."""
    mask = result.mask
    share = 0.0 if mask is None else float(mask.mean())
    heading = (f"**Triage ({result.triage.method})**: {result.triage.headline}"
               f"{damage_labels(result.triage)}. " if result.triage else "")
    used = "inpainted" if result.inpainted else "found, not inpainted"
    note = (f"{heading}Stages: {', '.join(result.plan.ids) or 'none'} "
            f"({result.message}). "
            f"Defect mask {used}: {share * 100:.2f} % of the photo")
    legend = legend_note(result)
    note += f" ({legend})." if legend else "."
    if result.auto_notes:
        note += " **Published models:** " + "; ".join(result.auto_notes) + "."
    for record in result.stages:
        if record.kind == StageKind.FACE.value:
            info = record.info
            note += (f" Faces: {info.get('faces_found', 0)} found, "
                     f"{info.get('faces_restored', 0)} restored (green boxes).")
            if info.get("messages"):
                note += " " + "; ".join(info["messages"]) + "."
    if result.colour_before_after is not None:
        note += " Colourised: the colourisation's own before/after is under the whole run's."
    if result.crop is not None:
        note += f" {result.crop.note().capitalize()}."
    return note


#: Colour (RGB in [0, 1]) and legend name of each damage kind in the overlay, in drawing order;
#: "other" is what no detector kind claims (a mask the user gave or painted).
LEGEND: Mapping[str, tuple[tuple[float, float, float], str, str]] = {
    "other": ((1.0, 0.1, 0.1), "red", "defects"),
    "crack": ((1.0, 0.1, 0.1), "red", "cracks and scratches"),
    "spot": ((1.0, 0.85, 0.0), "yellow", "spots, foxing, dust"),
    "crease": ((0.1, 0.55, 1.0), "blue", "creases and folds"),
    "hole": ((0.95, 0.2, 0.95), "magenta", "tears and missing parts"),
}


def legend_parts(result: RestoreResult) -> list[tuple[str, np.ndarray]]:
    """(kind, bool (H, W)) of the final defect mask split by damage kind, in :data:`LEGEND`
    order, empty kinds left out; a mask no detector split is one "other" part."""
    mask = result.mask
    if mask is None or not mask.any():
        return []
    kinds = {kind: part & mask for kind, part in result.kind_masks.items()
             if kind in LEGEND and part.shape == mask.shape}
    claimed = np.logical_or.reduce(list(kinds.values())) if kinds else np.zeros_like(mask)
    parts = {"other": mask & ~claimed, **kinds}
    return [(kind, parts[kind]) for kind in LEGEND if kind in parts and parts[kind].any()]


def legend_note(result: RestoreResult) -> str:
    """The overlay's legend in words: "red = cracks and scratches 1.20 %, yellow = ..."."""
    return ", ".join(f"{LEGEND[kind][1]} = {LEGEND[kind][2]} {part.mean() * 100:.2f} %"
                     for kind, part in legend_parts(result))


def result_overlay(result: RestoreResult) -> np.ndarray:
    """The input with the defect mask tinted by damage kind (:data:`LEGEND`) and restored faces
    outlined: float32 (H, W, 3)."""
    overlay = result.input
    for kind, part in legend_parts(result):
        overlay = overlay_mask(overlay, part, colour=LEGEND[kind][0])
    if overlay is result.input:
        overlay = result.input.copy()
    for record in result.stages:
        if record.kind == StageKind.FACE.value:
            # Boxes come in output pixels; the overlay is drawn on the input.
            ratio = result.input.shape[1] / result.image.shape[1]
            overlay = outline_boxes(overlay, [[v * ratio for v in box]
                                              for box in record.info.get("boxes", [])])
    return overlay


def rounded(value: Any) -> Any:
    """``value`` with every float inside rounded to 4 significant digits, for display."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    return value


# ----------------------------------------------------------------------------- masks
def mask_layer(mask: np.ndarray) -> np.ndarray:
    """bool (H, W) -> RGBA uint8 (H, W, 4) layer, red where defect, transparent elsewhere."""
    layer = np.zeros(mask.shape + (4,), np.uint8)
    layer[mask] = (255, 0, 0, 255)
    return layer


def editor_mask(value: Mapping[str, Any] | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The painted mask (bool ``shape``) of an image editor's value ({background, layers,
    composite}): any opaque pixel of any layer is a defect; None when nothing was painted."""
    if not value or not value.get("layers"):
        return None
    painted = np.zeros(shape, bool)
    for layer in value["layers"]:
        layer = np.asarray(layer)
        if layer.ndim == 3 and layer.shape[2] == 4 and layer.shape[:2] == shape:
            painted |= layer[..., 3] > 0
        elif layer.size:
            raise RestorerError("the painted mask does not match the photo's size: upload the "
                                "photo again and repaint")
    return painted
