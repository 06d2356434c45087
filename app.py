"""restorer's web page. UI only: every bit of image work happens in the restorer package.

Run ``python app.py --help`` for host, port, public link and queue settings.
"""

from __future__ import annotations

import os

# Set before gradio / huggingface_hub are imported: no analytics or telemetry calls.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from restorer import (ImageLimits, Pipeline, PlannedStage, RestoreResult, RestorerError,  # noqa: E402
                      StageKind, TriageResult, load_image, load_mask, plan_manual)
from restorer.backends import return_large_blocks_to_the_system  # noqa: E402
from restorer.costs import COSTS, describe_expected  # noqa: E402
from restorer.imaging import (check_defect_mask, mask_to_image, outline_boxes,  # noqa: E402
                              overlay_mask, to_uint8)
from restorer.model_status import ModelStatus, default_ids  # noqa: E402
from restorer.pipeline import DEFAULT_TIME_BUDGET  # noqa: E402
from restorer.service import (PixelGate, ServiceConfig, build_pipeline, build_store,  # noqa: E402
                              warm_up)
from restorer.settings import build_settings  # noqa: E402
from restorer.weights_cli import add_store_flags  # noqa: E402

log = logging.getLogger("restorer.app")

KINDS = ("detect", "inpaint", "deblur", "face", "colour")
EXAMPLES = Path(__file__).parent / "examples"


@dataclass(frozen=True)
class AppSettings:
    """Server settings chosen at launch."""

    host: str | None = None
    port: int | None = None
    share: bool = False
    concurrency: int = 2
    queue_size: int = 32
    #: Uploads and results are deleted from gradio's cache once older than this.
    keep_minutes: float = 15.0
    #: Pixels restored at once across all requests (bounds memory; see PixelGate).
    pixels_in_flight: int = 48_000_000
    limits: ImageLimits = ImageLimits()
    #: Seconds between refreshes of the Models panel in an open page.
    models_refresh_s: float = 3.0


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


MODES = ("Auto", "Manual")


def _page_error(exc: Exception, action: str) -> gr.Error:
    """The message the page shows for ``exc``; never a traceback, never in the log with the
    uploaded file's name (gradio prints a traceback for errors unless told not to)."""
    if isinstance(exc, RestorerError):
        return gr.Error(str(exc), print_exception=False)
    log.error("%s failed with an internal error (%s)", action, type(exc).__name__)
    return gr.Error(f"Internal error while trying to {action} ({type(exc).__name__}); please "
                    "try again or report it.", print_exception=False)


def _choices(pipeline: Pipeline, kind: StageKind) -> list[tuple[str, str]]:
    """Dropdown choices (label, stage id); unavailable stages say why (registry's reason)."""
    out = []
    for spec in pipeline.registry.specs(kind):
        reason = pipeline.registry.unavailable_reason(spec.id)
        label = spec.title if reason is None else f"{spec.title} (unavailable: {reason})"
        out.append((label, spec.id))
    return out


def example_files(folder: Path = EXAMPLES) -> tuple[list[Path], str]:
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


def _damage_labels(triage: TriageResult) -> str:
    """Each measured damage label with its own confidence (several may be high at once)."""
    if not triage.labels:
        return ""
    shown = ", ".join(f"{name} {p:.0%}" for name, p in triage.labels.items())
    return f" (independent labels: {shown})"


def _outputs(result: RestoreResult) -> tuple[Any, ...]:
    """Turn a result into the page's output values (uint8 arrays at full resolution)."""
    before, after = to_uint8(result.input), to_uint8(result.image)
    mask = result.mask
    if mask is None:
        mask = np.zeros(result.image.shape[:2], bool)
    labels = dict(result.triage.confidences) if result.triage else {}
    heading = (f"**Triage ({result.triage.method})**: {result.triage.label}"
               f"{_damage_labels(result.triage)}. " if result.triage else "")
    used = "inpainted" if result.inpainted else "found, not inpainted"
    note = (f"{heading}Stages: {', '.join(result.plan.ids) or 'none'} "
            f"({result.message}). "
            f"Defect mask {used}: {mask.mean() * 100:.2f} % of the photo.")
    if result.auto_notes:
        note += " **Published models:** " + "; ".join(result.auto_notes) + "."
    overlay = overlay_mask(result.input, mask)
    for record in result.stages:
        if record.kind == StageKind.FACE.value:
            info = record.info
            note += (f" Faces: {info.get('faces_found', 0)} found, "
                     f"{info.get('faces_restored', 0)} restored (green boxes).")
            if info.get("messages"):
                note += " " + "; ".join(info["messages"]) + "."
            # Boxes come in output pixels; the overlay is drawn on the input.
            ratio = result.input.shape[1] / result.image.shape[1]
            overlay = outline_boxes(overlay, [[v * ratio for v in box]
                                              for box in info.get("boxes", [])])
    order = list(result.timings)
    timings = gr.BarPlot(pd.DataFrame({"stage": order, "seconds": list(result.timings.values())}),
                         sort=order)
    editor = {"background": before, "layers": [_mask_layer(mask)], "composite": None}
    return (note, labels, (before, after), to_uint8(overlay),
            mask_to_image(mask), after, timings, _rounded(result.report()), editor)


def _rounded(value: Any) -> Any:
    """``value`` with every float inside rounded to 4 significant digits, for display."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


class SessionUploads:
    """Uploaded files per browser session, deleted as soon as no open tab uses them.

    While a tab is open its photo stays, so the user can re-run with other settings. gradio
    stores uploads by content, so two sessions may share a file: it goes with the last one.
    API clients have no tab; their uploads go with gradio's cache (``keep_minutes``), and
    sessions whose files are gone are dropped from the table.
    """

    def __init__(self) -> None:
        self._sessions: dict[str, set[Path]] = {}
        self._lock = threading.Lock()

    def add(self, session: str | None, path: str) -> None:
        """Remember ``path`` as used by ``session`` (None: not a browser session)."""
        if not session:
            return
        with self._lock:
            for known in list(self._sessions):
                alive = {p for p in self._sessions[known] if p.exists()}
                if alive:
                    self._sessions[known] = alive
                else:
                    del self._sessions[known]
            self._sessions.setdefault(session, set()).add(Path(path))

    def forget(self, session: str | None) -> list[Path]:
        """Delete the files only ``session`` used (and their emptied folders); returns them."""
        with self._lock:
            paths = self._sessions.pop(session, set()) if session else set()
            in_use = set().union(*self._sessions.values())
        deleted = sorted(paths - in_use)
        for path in deleted:
            path.unlink(missing_ok=True)
            try:
                path.parent.rmdir()  # gradio keeps each upload in a folder of its own
            except OSError:
                pass
        return deleted


class CacheJanitor:
    """Deletes uploads and results older than ``keep_seconds`` from gradio's cache folder.

    Replaces gradio's own schedule (``delete_cache``), which in gradio 6.31 iterates its live
    sets of cached files while requests add to them: under load it dies of "Set changed size
    during iteration" and the cache then grows for the rest of the server's life (found by
    bench/load.py: 4,601 files left after 1,000 requests). This one works on the folder: it
    also removes the per-file folders gradio leaves, and files a killed server left behind.
    The page's example photos (``keep_in_cache``) stay.
    """

    def __init__(self, demo: gr.Blocks, folder: Path, keep_seconds: float) -> None:
        self.demo = demo
        self.folder = Path(folder)
        self.keep_seconds = keep_seconds
        self._stop = threading.Event()

    def sweep(self, now: float | None = None) -> int:
        """Delete what is older than the keep time; returns the number of files deleted."""
        now = time.time() if now is None else now
        keep = {str(Path(f)) for block in self.demo.blocks.values()
                for f in getattr(block, "keep_in_cache", ())}
        deleted = 0
        for root, folders, files in os.walk(self.folder, topdown=False):
            emptied = False
            for name in files:
                path = os.path.join(root, name)
                try:
                    if path not in keep and now - os.lstat(path).st_ctime > self.keep_seconds:
                        os.remove(path)
                        deleted += 1
                        emptied = True
                except FileNotFoundError:
                    continue
            if root != str(self.folder):
                try:  # emptied now, or old and empty: a new one may be about to get its upload
                    if emptied or now - os.lstat(root).st_mtime > self.keep_seconds:
                        os.rmdir(root)
                except OSError:
                    pass
        for files in self.demo.temp_file_sets:  # forget what is gone (list() copies atomically)
            for name in list(files):
                if not os.path.exists(name):
                    files.discard(name)
        return deleted

    def start(self) -> threading.Thread:
        """Sweep now and then every third of the keep time, in a daemon thread."""
        def loop() -> None:
            while True:
                try:
                    if deleted := self.sweep():
                        log.info("deleted %d cached upload/result files older than %.0f s",
                                 deleted, self.keep_seconds)
                except Exception:  # a sweep must never stop the next one
                    log.exception("cache sweep failed")
                if self._stop.wait(max(1.0, self.keep_seconds / 3)):
                    return

        thread = threading.Thread(target=loop, name="restorer-cache-janitor", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop the sweeping thread after its current sweep."""
        self._stop.set()


def _upload_path(payload: str | dict) -> str:
    """The uploaded file's path. Events that take uploads skip gradio's preprocessing so that
    restorer's imaging boundary (not PIL inside gradio) judges every file, with its messages."""
    return payload["path"] if isinstance(payload, dict) else payload


def _mask_layer(mask: np.ndarray) -> np.ndarray:
    """bool (H, W) -> RGBA uint8 layer, red where defect, transparent elsewhere."""
    layer = np.zeros(mask.shape + (4,), np.uint8)
    layer[mask] = (255, 0, 0, 255)
    return layer


def _editor_mask(value: dict | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The painted mask of an ImageEditor value: any opaque pixel of any layer is a defect."""
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


class PageActions:
    """What the page's buttons do, over ``pipeline`` (built once, shared by all requests).

    The methods are the events' handlers; their signatures are the named API endpoints'.
    """

    def __init__(self, pipeline: Pipeline, settings: AppSettings) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.specs = {s.id: s for s in pipeline.registry.specs()}
        self.gate = PixelGate(settings.pixels_in_flight)
        self.uploads = SessionUploads()

    def upload(self, payload: str | dict, request: gr.Request | None) -> str:
        """The uploaded file's path, remembered for the session that sent it."""
        path = _upload_path(payload)
        self.uploads.add(getattr(request, "session_hash", None), path)
        return path

    def load(self, photo: str | dict | None, request: gr.Request | None) -> np.ndarray:
        """The uploaded photo as float32 (H, W, 3) in [0, 1]; RestorerError when absent."""
        if not photo:
            raise RestorerError("Upload a photo first.")
        path = self.upload(photo, request)
        if not Path(path).is_file():
            raise RestorerError(f"The uploaded photo is no longer on the server (uploads are "
                                f"kept {self.settings.keep_minutes:g} minutes): upload it again.")
        return load_image(path, limits=self.settings.limits)

    def run(self, image: np.ndarray, plan, mask, progress: gr.Progress,
            time_budget: float | None = None) -> tuple[Any, ...]:
        """Run ``plan`` (None: Auto) within the pixel gate; the page's output values."""
        pixels = image.shape[0] * image.shape[1]
        gate = self.gate
        if gate.in_use and gate.in_use + pixels > gate.budget:
            progress(0.0, desc="waiting for memory: other large photos are being restored")
        with gate.admit(pixels):
            result = self.pipeline.run(image, plan, mask=mask, time_budget=time_budget,
                                       progress=lambda f, text: progress(f, desc=text))
            return _outputs(result)

    def manual_plan(self, kinds: list[str], detect_id: str, sensitivity: float, inpaint_id: str,
                    deblur_id: str, face: FaceChoice, has_mask: bool):
        """The Manual plan of the ticked ``kinds`` with the chosen stages."""
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise RestorerError(f"unknown stage kind '{unknown[0]}': use {', '.join(KINDS)}")
        chosen = {"detect": PlannedStage(detect_id, {"sensitivity": sensitivity}),
                  "inpaint": PlannedStage(inpaint_id), "deblur": PlannedStage(deblur_id),
                  "face": PlannedStage(face.stage_id, face.options()),
                  "colour": PlannedStage("colour.ddcolor")}
        return plan_manual([chosen[k] for k in KINDS if k in kinds], self.specs,
                           has_mask=has_mask)

    def restore(self, photo, mode, kinds, detect_id, sensitivity, inpaint_id, deblur_id,
                mask_file, face_id, fidelity, which_faces, min_face, upscale,
                time_budget=DEFAULT_TIME_BUDGET, request: gr.Request = None,
                progress=gr.Progress()):
        """Restore a photo. mode: "Auto" (triage decides) or "Manual" (run the ticked kinds).

        Face options (Manual, kind "face"): fidelity 0..1 (0 keeps the input face), which faces
        ("all", "centre" or "large" = at least ``min_face`` px), upscale 1, 2 or 4. A given
        mask replaces detection (the CLI's default ``--mask-mode replace``). ``time_budget``
        (Auto): seconds the published learned stages may take (empty: no budget).
        """
        try:
            if mode not in MODES:
                raise RestorerError(f"unknown mode '{mode}': use Auto or Manual")
            budget = _time_budget(time_budget)
            image = self.load(photo, request)
            mask = (None if not mask_file
                    else load_mask(self.upload(mask_file, request), shape=image.shape[:2],
                                   limits=self.settings.limits))
            plan = None
            if mode == "Manual":
                face = FaceChoice(face_id, fidelity, which_faces, min_face, upscale)
                plan = self.manual_plan(kinds or [], detect_id, sensitivity, inpaint_id,
                                        deblur_id, face, mask is not None)
            return self.run(image, plan, mask, progress, budget)
        except Exception as exc:
            raise _page_error(exc, "restore the photo") from None

    def inpaint_with_editor(self, photo, editor, inpaint_id, request: gr.Request,
                            progress=gr.Progress()):
        """Inpaint the mask painted in the editor with ``inpaint_id``."""
        try:
            image = self.load(photo, request)
            mask = _editor_mask(editor, image.shape[:2])
            if mask is None or not mask.any():
                raise RestorerError("the mask is empty: paint over the defects first")
            check_defect_mask(mask)
            plan = plan_manual([inpaint_id], self.specs, has_mask=True)
            return self.run(image, plan, mask, progress)
        except Exception as exc:
            raise _page_error(exc, "inpaint with the painted mask") from None

    def detect(self, photo, detect_id, sensitivity, request: gr.Request, progress=gr.Progress()):
        """Find defects only: triage labels and the defect mask; the photo is not changed."""
        try:
            plan = plan_manual([PlannedStage(detect_id, {"sensitivity": sensitivity})],
                               self.specs)
            return self.run(self.load(photo, request), plan, None, progress)
        except Exception as exc:
            raise _page_error(exc, "find the defects") from None

    def expected(self, stage_id: str | None) -> str:
        """The line next to a Manual choice: a learned stage's expected time (else empty)."""
        if not stage_id or stage_id not in COSTS:
            return ""
        line = describe_expected(stage_id, 1.0, self.pipeline.device_kind())
        return f"*Expected: {line}*" if line else ""


def _time_budget(value: Any) -> float | None:
    """The page's time budget in seconds (None: no budget); RestorerError when negative."""
    if value is None or value == "":
        return float("inf")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise RestorerError(f"the time budget must be a number of seconds, not '{value}'") from None
    if not seconds >= 0:
        raise RestorerError(f"the time budget must be 0 or more seconds, not {value}")
    return seconds


@dataclass(frozen=True)
class ManualControls:
    """The Manual mode controls (in the order /restore takes them after photo and mode)."""

    box: Any
    kinds: Any
    detect_id: Any
    sensitivity: Any
    inpaint_id: Any
    deblur_id: Any
    face_id: Any
    fidelity: Any
    which_faces: Any
    min_face: Any
    upscale: Any
    mask_file: Any
    expected: tuple[tuple[Any, Any], ...]  # (dropdown, its expected-time line)


@dataclass(frozen=True)
class EditorControls:
    """The mask editor accordion."""

    editor: Any
    method: Any
    rerun: Any


def _manual_panel(pipeline: Pipeline, actions: PageActions) -> ManualControls:
    """Stage choices, face options and the user-mask upload of Manual mode (hidden in Auto);
    a learned stage's choice shows its expected time in a line under it."""
    with gr.Group(visible=False) as box:
        kinds = gr.CheckboxGroup(list(KINDS), value=["detect", "inpaint"],
                                 label="Stages (run in this order)")
        detect_id = gr.Dropdown(_choices(pipeline, StageKind.DETECT),
                                value=pipeline.auto.detect, label="Detection")
        detect_time = gr.Markdown(actions.expected(pipeline.auto.detect))
        sensitivity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Detection sensitivity")
        inpaint_id = gr.Dropdown(_choices(pipeline, StageKind.INPAINT),
                                 value=pipeline.auto.inpaint, label="Inpainting")
        inpaint_time = gr.Markdown(actions.expected(pipeline.auto.inpaint))
        deblur_id = gr.Dropdown(_choices(pipeline, StageKind.DEBLUR), value="deblur.rl",
                                label="Deblur")
        deblur_time = gr.Markdown("")
        face_choices = _choices(pipeline, StageKind.FACE)
        face_id = gr.Dropdown(face_choices, value=face_choices[0][1] if face_choices else None,
                              label="Face restoration")
        fidelity = gr.Slider(0.0, 1.0, value=0.7, step=0.05,
                             label="Face fidelity (0 = keep the input face, 1 = full restoration)")
        with gr.Row():
            which_faces = gr.Radio(["all", "centre", "large"], value="all", label="Which faces")
            min_face = gr.Number(64, precision=0, minimum=16, label="'large' = at least (px)")
            upscale = gr.Radio([1, 2, 4], value=1, label="Upscale")
        mask_file = gr.Image(label="Defect mask to use instead of detection (optional: any "
                                   "non-black pixel is a defect)",
                             type="filepath", image_mode=None, height=160)
    return ManualControls(box, kinds, detect_id, sensitivity, inpaint_id, deblur_id, face_id,
                          fidelity, which_faces, min_face, upscale, mask_file,
                          ((detect_id, detect_time), (inpaint_id, inpaint_time),
                           (deblur_id, deblur_time)))


def _editor_panel(pipeline: Pipeline) -> EditorControls:
    """The accordion where the defect mask is corrected by hand and inpainted again."""
    with gr.Accordion("Correct the defect mask and inpaint again", open=False):
        editor = gr.ImageEditor(label="Paint defects with the brush, erase mistakes",
                                type="numpy", brush=gr.Brush(colors=["#ff0000"], default_size=8),
                                sources=(), transforms=())
        method = gr.Dropdown(_choices(pipeline, StageKind.INPAINT), value=pipeline.auto.inpaint,
                             label="Inpainting")
        rerun = gr.Button("Inpaint with this mask")
    return EditorControls(editor, method, rerun)


def _results_panel(pipeline: Pipeline) -> list[Any]:
    """The outputs every action fills: note, labels, slider, overlay, mask, restored photo,
    timings, report (the editor is appended by the caller)."""
    triage_spec = pipeline.registry.spec(pipeline.triage_id)
    note = gr.Markdown(f"Triage: **{triage_spec.title}**: {triage_spec.description}")
    labels = gr.Label(label="Damage found (triage)", num_top_classes=4)
    slider = gr.ImageSlider(label="Before (left) / after (right): drag to compare",
                            type="numpy", format="png")
    with gr.Row():
        overlay = gr.Image(label="Defects (red)", format="png", interactive=False)
        mask_out = gr.Image(label="Defect mask (white = defect)", format="png", image_mode="L",
                            interactive=False)
    restored = gr.Image(label="Restored photo (full-resolution PNG)", format="png",
                        interactive=False)
    timings = gr.BarPlot(x="stage", y="seconds", title="Seconds per stage", height=220)
    report = gr.JSON(label="Report")
    return [note, labels, slider, overlay, mask_out, restored, timings, report]


MODEL_COLUMNS = ["model", "stage", "status", "licence", "size (MB)"]


def models_table(models: ModelStatus | None) -> pd.DataFrame:
    """The Models panel's rows: each manifest file's state (present / downloading with
    percent / unavailable and why, with the ``weights pull`` command), licence and size."""
    if models is None:
        return pd.DataFrame([["-", "-", "not tracked by this server", "-", None]],
                            columns=MODEL_COLUMNS)
    return pd.DataFrame([[r.id, r.stage, r.status, r.licence, r.size_mb] for r in models.rows()],
                        columns=MODEL_COLUMNS)


def _models_panel(models: ModelStatus | None, refresh_s: float) -> None:
    """The Models accordion, refreshed every ``refresh_s`` seconds while the page is open
    (also a named endpoint, /models)."""
    with gr.Accordion("Models", open=False):
        gr.Markdown("Published models are pulled in the background at start; until a file "
                    "is verified, Auto uses the classical fallback and says so.")
        table = gr.Dataframe(models_table(models), headers=MODEL_COLUMNS, interactive=False,
                             wrap=True)
        timer = gr.Timer(refresh_s)
    # Not limited by the restore concurrency: a tick never waits behind a long restore.
    timer.tick(lambda: models_table(models), None, table, api_name="models",
               show_progress="hidden", concurrency_limit=None)


def _controls_panel(pipeline: Pipeline, actions: PageActions) -> tuple[dict[str, Any],
                                                                        ManualControls,
                                                                        EditorControls]:
    """The left column: photo, mode, time budget, Manual controls, buttons, examples, editor."""
    photo = gr.Image(label="Old photo", type="filepath", image_mode=None,
                     sources=["upload", "clipboard"], height=360)
    mode = gr.Radio(["Auto", "Manual"], value="Auto", label="Mode")
    budget = pipeline.time_budget
    time_budget = gr.Number(budget, minimum=0, label="Auto: seconds the published models may "
                            "take (slower ones are replaced by classical fills; empty: no limit)")
    manual = _manual_panel(pipeline, actions)
    with gr.Row():
        detect_button = gr.Button("Find defects")
        run_button = gr.Button("Restore", variant="primary")
    examples, examples_label = example_files()
    if examples:
        gr.Examples([[str(p)] for p in examples], inputs=[photo], label=examples_label)
    editor = _editor_panel(pipeline)
    controls = {"photo": photo, "mode": mode, "time_budget": time_budget,
                "detect_button": detect_button, "run_button": run_button}
    return controls, manual, editor


def _wire(actions: PageActions, controls: dict[str, Any], manual: ManualControls,
          editor: EditorControls, outputs: list[Any]) -> None:
    """The events: mode switch, expected-time lines, Restore, Find defects, Inpaint again."""
    controls["mode"].change(lambda m: gr.update(visible=m == "Manual"), controls["mode"],
                            manual.box, api_visibility="private")
    for dropdown, line in manual.expected:
        dropdown.change(actions.expected, dropdown, line, api_visibility="private")
    m = manual
    controls["run_button"].click(
        actions.restore, [controls["photo"], controls["mode"], m.kinds, m.detect_id,
                          m.sensitivity, m.inpaint_id, m.deblur_id, m.mask_file, m.face_id,
                          m.fidelity, m.which_faces, m.min_face, m.upscale,
                          controls["time_budget"]],
        outputs, api_name="restore", preprocess=False)
    editor.rerun.click(actions.inpaint_with_editor, [controls["photo"], editor.editor,
                                                     editor.method], outputs,
                       api_visibility="private")
    controls["detect_button"].click(actions.detect, [controls["photo"], m.detect_id,
                                                     m.sensitivity], outputs,
                                    api_name="detect", preprocess=False)


def build_demo(pipeline: Pipeline, settings: AppSettings = AppSettings(),
               models: ModelStatus | None = None) -> gr.Blocks:
    """The page, wired to ``pipeline`` (built once, shared by all requests); ``models``: the
    model files' states for the Models panel (None: not tracked)."""
    actions = PageActions(pipeline, settings)
    with gr.Blocks(title="restorer: old photo restoration") as demo:
        gr.Markdown("# restorer\nUpload a scan of an old photo. **Auto** finds what is wrong "
                    "and repairs it; **Manual** lets you pick the stages and correct the mask.")
        with gr.Row():
            with gr.Column(scale=1):
                controls, manual, editor = _controls_panel(pipeline, actions)
                _models_panel(models, settings.models_refresh_s)
            with gr.Column(scale=2):
                outputs = _results_panel(pipeline)
        _wire(actions, controls, manual, editor, outputs + [editor.editor])

        def forget_uploads(request: gr.Request) -> None:
            actions.uploads.forget(request.session_hash)

        demo.unload(forget_uploads)
    return demo


def parse_args(argv: list[str] | None = None) -> tuple[AppSettings, ServiceConfig]:
    """Command-line settings of the app (read here, at the edge, with the environment)."""
    parser = argparse.ArgumentParser(description="restorer web app")
    parser.add_argument("--host", default=None, help="address to bind (default 127.0.0.1, "
                        "or GRADIO_SERVER_NAME)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860)")
    parser.add_argument("--share", action="store_true", help="ask for a public gradio.live link")
    parser.add_argument("--concurrency", type=int, default=2,
                        help="requests processed at once (default 2: one per CPU core here)")
    parser.add_argument("--queue-size", type=int, default=32,
                        help="requests waiting at most; more are told the app is busy")
    parser.add_argument("--pixels-in-flight", type=float, default=48.0,
                        help="megapixels restored at once across all users; more wait "
                             "(bounds memory, default 48)")
    parser.add_argument("--keep-minutes", type=float, default=15.0,
                        help="uploads and results are deleted this long after they were made "
                             "(default 15); keep it well above the longest queue wait")
    parser.add_argument("--offline", action=argparse.BooleanOptionalAction, default=None,
                        help="never download weights (default: on when HF_HUB_OFFLINE is 1, "
                             "true, yes or on)")
    add_store_flags(parser)
    parser.add_argument("--time-budget", type=float, default=DEFAULT_TIME_BUDGET, metavar="S",
                        help="seconds Auto's published models may take per photo by default "
                             f"(the page can change it; default {DEFAULT_TIME_BUDGET:g}; inf: none)")
    args = parser.parse_args(argv)
    settings = AppSettings(host=args.host, port=args.port, share=args.share,
                           concurrency=args.concurrency, queue_size=args.queue_size,
                           keep_minutes=args.keep_minutes,
                           pixels_in_flight=int(args.pixels_in_flight * 1e6))
    try:
        return settings, build_settings(vars(args), os.environ)
    except RestorerError as exc:  # a bad flag or environment value: refused like a bad flag
        parser.error(str(exc))


def launch(demo: gr.Blocks, settings: AppSettings, **kwargs: Any) -> CacheJanitor:
    """Start serving with the queue limits of ``settings`` and a janitor for gradio's cache
    (returned; it runs until the process ends or ``stop()``)."""
    janitor = CacheJanitor(demo, Path(demo.GRADIO_CACHE), settings.keep_minutes * 60)
    janitor.start()
    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
    demo.launch(server_name=settings.host, server_port=settings.port, share=settings.share,
                max_file_size=settings.limits.max_bytes, show_error=True, **kwargs)
    return janitor


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Build the pipeline once and serve the page."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up lines
    # oneDNN's "custom operations are on" line is absl's, which the level above does not
    # reach on CPUs where oneDNN runs; with it off TensorFlow prints nothing at start.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return_large_blocks_to_the_system()
    # A stop request (docker stop, systemd) shuts down like Ctrl-C: gradio closes cleanly.
    signal.signal(signal.SIGTERM, _interrupt)
    settings, config = parse_args(argv)
    pipeline = build_pipeline(config)
    warm_up(pipeline)
    models = start_models(pipeline, config)
    launch(build_demo(pipeline, settings, models), settings)


def start_models(pipeline: Pipeline, config: ServiceConfig) -> ModelStatus:
    """The Models panel's source; the missing default files are pulled in the background
    (offline: none), and each verified one is loaded at once (warm_up) for the next request."""
    store = build_store(config)
    wanted = default_ids(((s.id, s.weights) for s in pipeline.registry.specs()),
                         store.manifest.ids)
    models = ModelStatus(store, wanted, on_ready=lambda weight_id: warm_up(pipeline))
    models.start_pull()
    return models


if __name__ == "__main__":
    main()
