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
from restorer.imaging import (check_defect_mask, mask_to_image, outline_boxes,  # noqa: E402
                              overlay_mask, to_uint8)
from restorer.service import PixelGate, ServiceConfig, build_pipeline, warm_up  # noqa: E402

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
    """Dropdown choices (label, stage id); unavailable stages say why."""
    out = []
    for spec in pipeline.registry.specs(kind):
        missing = pipeline.registry.missing_weights(spec.id)
        label = spec.title if not missing else f"{spec.title} (unavailable: run weights pull)"
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


def build_demo(pipeline: Pipeline, settings: AppSettings = AppSettings()) -> gr.Blocks:
    """The page, wired to ``pipeline`` (built once, shared by all requests)."""
    limits = settings.limits
    specs = {s.id: s for s in pipeline.registry.specs()}
    gate = PixelGate(settings.pixels_in_flight)
    uploads = SessionUploads()

    def upload(payload: str | dict, request: gr.Request | None) -> str:
        path = _upload_path(payload)
        uploads.add(getattr(request, "session_hash", None), path)
        return path

    def load(photo: str | dict | None, request: gr.Request | None) -> np.ndarray:
        if not photo:
            raise RestorerError("Upload a photo first.")
        path = upload(photo, request)
        if not Path(path).is_file():
            raise RestorerError(f"The uploaded photo is no longer on the server (uploads are "
                                f"kept {settings.keep_minutes:g} minutes): upload it again.")
        return load_image(path, limits=limits)

    def run(image: np.ndarray, plan, mask, progress: gr.Progress) -> tuple[Any, ...]:
        pixels = image.shape[0] * image.shape[1]
        if gate.in_use and gate.in_use + pixels > gate.budget:
            progress(0.0, desc="waiting for memory: other large photos are being restored")
        with gate.admit(pixels):
            result = pipeline.run(image, plan, mask=mask,
                                  progress=lambda f, text: progress(f, desc=text))
            return _outputs(result)

    def manual_plan(kinds: list[str], detect_id: str, sensitivity: float, inpaint_id: str,
                    deblur_id: str, face: FaceChoice, has_mask: bool):
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise RestorerError(f"unknown stage kind '{unknown[0]}': use {', '.join(KINDS)}")
        chosen = {"detect": PlannedStage(detect_id, {"sensitivity": sensitivity}),
                  "inpaint": PlannedStage(inpaint_id), "deblur": PlannedStage(deblur_id),
                  "face": PlannedStage(face.stage_id, face.options()),
                  "colour": PlannedStage("colour.ddcolor")}
        return plan_manual([chosen[k] for k in KINDS if k in kinds], specs, has_mask=has_mask)

    def restore(photo, mode, kinds, detect_id, sensitivity, inpaint_id, deblur_id, mask_file,
                face_id, fidelity, which_faces, min_face, upscale, request: gr.Request,
                progress=gr.Progress()):
        """Restore a photo. mode: "Auto" (triage decides) or "Manual" (run the ticked kinds).

        Face options (Manual, kind "face"): fidelity 0..1 (0 keeps the input face), which faces
        ("all", "centre" or "large" = at least ``min_face`` px), upscale 1, 2 or 4. A given
        mask replaces detection (the CLI's default ``--mask-mode replace``).
        """
        try:
            if mode not in MODES:
                raise RestorerError(f"unknown mode '{mode}': use Auto or Manual")
            image = load(photo, request)
            mask = (None if not mask_file
                    else load_mask(upload(mask_file, request), shape=image.shape[:2],
                                   limits=limits))
            plan = None
            if mode == "Manual":
                face = FaceChoice(face_id, fidelity, which_faces, min_face, upscale)
                plan = manual_plan(kinds or [], detect_id, sensitivity, inpaint_id, deblur_id,
                                   face, mask is not None)
            return run(image, plan, mask, progress)
        except Exception as exc:
            raise _page_error(exc, "restore the photo") from None

    def inpaint_with_editor(photo, editor, inpaint_id, request: gr.Request,
                            progress=gr.Progress()):
        try:
            image = load(photo, request)
            mask = _editor_mask(editor, image.shape[:2])
            if mask is None or not mask.any():
                raise RestorerError("the mask is empty: paint over the defects first")
            check_defect_mask(mask)
            plan = plan_manual([inpaint_id], specs, has_mask=True)
            return run(image, plan, mask, progress)
        except Exception as exc:
            raise _page_error(exc, "inpaint with the painted mask") from None

    def detect(photo, detect_id, sensitivity, request: gr.Request, progress=gr.Progress()):
        """Find defects only: triage labels and the defect mask; the photo is not changed."""
        try:
            plan = plan_manual([PlannedStage(detect_id, {"sensitivity": sensitivity})], specs)
            return run(load(photo, request), plan, None, progress)
        except Exception as exc:
            raise _page_error(exc, "find the defects") from None

    with gr.Blocks(title="restorer: old photo restoration") as demo:
        gr.Markdown("# restorer\nUpload a scan of an old photo. **Auto** finds what is wrong "
                    "and repairs it; **Manual** lets you pick the stages and correct the mask.")
        with gr.Row():
            with gr.Column(scale=1):
                photo = gr.Image(label="Old photo", type="filepath", image_mode=None,
                                 sources=["upload", "clipboard"], height=360)
                mode = gr.Radio(["Auto", "Manual"], value="Auto", label="Mode")
                with gr.Group(visible=False) as manual_box:
                    kinds = gr.CheckboxGroup(list(KINDS), value=["detect", "inpaint"],
                                             label="Stages (run in this order)")
                    detect_id = gr.Dropdown(_choices(pipeline, StageKind.DETECT),
                                            value=pipeline.auto.detect, label="Detection")
                    sensitivity = gr.Slider(0.0, 1.0, value=0.5, step=0.05,
                                            label="Detection sensitivity")
                    inpaint_id = gr.Dropdown(_choices(pipeline, StageKind.INPAINT),
                                             value=pipeline.auto.inpaint, label="Inpainting")
                    deblur_id = gr.Dropdown(_choices(pipeline, StageKind.DEBLUR),
                                            value="deblur.rl", label="Deblur")
                    face_choices = _choices(pipeline, StageKind.FACE)
                    face_id = gr.Dropdown(face_choices, value=face_choices[0][1] if face_choices
                                          else None, label="Face restoration")
                    fidelity = gr.Slider(0.0, 1.0, value=0.7, step=0.05,
                                         label="Face fidelity (0 = keep the input face, "
                                               "1 = full restoration)")
                    with gr.Row():
                        which_faces = gr.Radio(["all", "centre", "large"], value="all",
                                               label="Which faces")
                        min_face = gr.Number(64, precision=0, minimum=16,
                                             label="'large' = at least (px)")
                        upscale = gr.Radio([1, 2, 4], value=1, label="Upscale")
                    mask_file = gr.Image(label="Defect mask to use instead of detection "
                                               "(optional: any non-black pixel is a defect)",
                                         type="filepath", image_mode=None, height=160)
                with gr.Row():
                    detect_button = gr.Button("Find defects")
                    run_button = gr.Button("Restore", variant="primary")
                examples, examples_label = example_files()
                if examples:
                    gr.Examples([[str(p)] for p in examples], inputs=[photo],
                                label=examples_label)
                with gr.Accordion("Correct the defect mask and inpaint again", open=False):
                    editor = gr.ImageEditor(label="Paint defects with the brush, erase mistakes",
                                            type="numpy", brush=gr.Brush(colors=["#ff0000"],
                                                                         default_size=8),
                                            sources=(), transforms=())
                    editor_method = gr.Dropdown(_choices(pipeline, StageKind.INPAINT),
                                                value=pipeline.auto.inpaint, label="Inpainting")
                    rerun = gr.Button("Inpaint with this mask")
            with gr.Column(scale=2):
                triage_spec = pipeline.registry.spec(pipeline.triage_id)
                note = gr.Markdown(f"Triage: **{triage_spec.title}**: "
                                   f"{triage_spec.description}")
                labels = gr.Label(label="Damage found (triage)", num_top_classes=4)
                slider = gr.ImageSlider(label="Before (left) / after (right): drag to compare",
                                        type="numpy", format="png")
                with gr.Row():
                    overlay = gr.Image(label="Defects (red)", format="png", interactive=False)
                    mask_out = gr.Image(label="Defect mask (white = defect)", format="png",
                                        image_mode="L", interactive=False)
                restored = gr.Image(label="Restored photo (full-resolution PNG)", format="png",
                                    interactive=False)
                timings = gr.BarPlot(x="stage", y="seconds", title="Seconds per stage",
                                     height=220)
                report = gr.JSON(label="Report")
        outputs = [note, labels, slider, overlay, mask_out, restored, timings, report, editor]
        mode.change(lambda m: gr.update(visible=m == "Manual"), mode, manual_box,
                    api_visibility="private")
        run_button.click(restore, [photo, mode, kinds, detect_id, sensitivity, inpaint_id,
                                   deblur_id, mask_file, face_id, fidelity, which_faces, min_face,
                                   upscale], outputs, api_name="restore", preprocess=False)
        rerun.click(inpaint_with_editor, [photo, editor, editor_method], outputs,
                    api_visibility="private")
        detect_button.click(detect, [photo, detect_id, sensitivity], outputs, api_name="detect",
                            preprocess=False)

        def forget_uploads(request: gr.Request) -> None:
            uploads.forget(request.session_hash)

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
    parser.add_argument("--offline", action="store_true",
                        default=os.environ.get("HF_HUB_OFFLINE") == "1",
                        help="never download weights (default from HF_HUB_OFFLINE)")
    args = parser.parse_args(argv)
    settings = AppSettings(host=args.host, port=args.port, share=args.share,
                           concurrency=args.concurrency, queue_size=args.queue_size,
                           keep_minutes=args.keep_minutes,
                           pixels_in_flight=int(args.pixels_in_flight * 1e6))
    return settings, ServiceConfig(offline=args.offline)


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
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return_large_blocks_to_the_system()
    # A stop request (docker stop, systemd) shuts down like Ctrl-C: gradio closes cleanly.
    signal.signal(signal.SIGTERM, _interrupt)
    settings, config = parse_args(argv)
    pipeline = build_pipeline(config)
    warm_up(pipeline)
    launch(build_demo(pipeline, settings), settings)


if __name__ == "__main__":
    main()
