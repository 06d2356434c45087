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
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from restorer import (ImageLimits, Pipeline, PlannedStage, RestoreResult, RestorerError,  # noqa: E402
                      load_image, load_mask, plan_manual)
from restorer.backends import return_large_blocks_to_the_system  # noqa: E402
from restorer.costs import COSTS, describe_expected  # noqa: E402
from restorer.imaging import check_defect_mask, mask_to_image, to_uint8  # noqa: E402
from restorer.model_status import ModelStatus, default_ids  # noqa: E402
from restorer.page import (MODES, CacheJanitor, FaceChoice, SessionUploads,  # noqa: E402
                           auto_colourise, before_after, editor_mask, label_values, manual_plan,
                           mask_layer, parse_time_budget, result_note, result_overlay, rounded,
                           upload_path)
from restorer.pipeline import DEFAULT_TIME_BUDGET  # noqa: E402
from restorer.service import (PixelGate, ServiceConfig, build_pipeline, build_store,  # noqa: E402
                              warm_up)
from restorer.settings import build_settings  # noqa: E402
from restorer.weights_cli import add_store_flags  # noqa: E402

from app_panels import controls_panel, models_panel, results_panel, wire_events  # noqa: E402

log = logging.getLogger("restorer.app")


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


def _page_error(exc: Exception, action: str) -> gr.Error:
    """The message the page shows for ``exc``; never a traceback, never in the log with the
    uploaded file's name (gradio prints a traceback for errors unless told not to)."""
    if isinstance(exc, RestorerError):
        return gr.Error(str(exc), print_exception=False)
    log.error("%s failed with an internal error (%s)", action, type(exc).__name__)
    return gr.Error(f"Internal error while trying to {action} ({type(exc).__name__}); please "
                    "try again or report it.", print_exception=False)


def _outputs(result: RestoreResult) -> tuple[Any, ...]:
    """Turn a result into the page's output values (uint8 arrays at full resolution); the last
    is the colourisation's (before, after) for the page's state (None: no colour stage ran)."""
    before, after = (to_uint8(image) for image in before_after(result))
    colour = result.colour_before_after
    mask = result.mask
    if mask is None:
        mask = np.zeros(result.input.shape[:2], bool)  # the scan's, as the overlay and editor
    labels = label_values(result.triage) if result.triage else {}
    order = list(result.timings)
    timings = gr.BarPlot(pd.DataFrame({"stage": order, "seconds": list(result.timings.values())}),
                         sort=order)
    editor = {"background": before if result.crop is None else to_uint8(result.input),
              "layers": [mask_layer(mask)], "composite": None}
    return (result_note(result), labels, (before, after), to_uint8(result_overlay(result)),
            mask_to_image(mask), after, timings, rounded(result.report()), editor,
            None if colour is None else (to_uint8(colour[0]), after))


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
        path = upload_path(payload)
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
            time_budget: float | None = None, colourise: bool = False,
            crop_to_print: bool = False) -> tuple[Any, ...]:
        """Run ``plan`` (None: Auto) within the pixel gate; the page's output values."""
        pixels = image.shape[0] * image.shape[1]
        gate = self.gate
        if gate.in_use and gate.in_use + pixels > gate.budget:
            progress(0.0, desc="waiting for memory: other large photos are being restored")
        with gate.admit(pixels):
            result = self.pipeline.run(image, plan, mask=mask, time_budget=time_budget,
                                       colourise=colourise, crop_to_print=crop_to_print,
                                       progress=lambda f, text: progress(f, desc=text))
            return _outputs(result)

    def restore(self, photo, mode, kinds, detect_id, sensitivity, inpaint_id, deblur_id,
                mask_file, face_id, fidelity, which_faces, min_face, upscale,
                time_budget=DEFAULT_TIME_BUDGET, colourise=False, crop_to_print=False,
                request: gr.Request = None, progress=gr.Progress()):
        """Restore a photo. mode: "Auto" (triage decides) or "Manual" (run the ticked kinds).

        Face options (Manual, kind "face"): fidelity 0..1 (0 keeps the input face), which faces
        ("all", "centre" or "large" = at least ``min_face`` px), upscale 1, 2 or 4. A given
        mask replaces detection (the CLI's default ``--mask-mode replace``). ``time_budget``
        (Auto): seconds the published learned stages may take (empty: no budget). ``colourise``
        (Auto; Manual ticks colour instead): end with colourisation. ``crop_to_print``: cut
        the result to the print when a mount is found.
        """
        try:
            if mode not in MODES:
                raise RestorerError(f"unknown mode '{mode}': use Auto or Manual")
            budget = parse_time_budget(time_budget)
            colourise = mode == "Auto" and auto_colourise(self.pipeline, colourise)
            image = self.load(photo, request)
            mask = (None if not mask_file
                    else load_mask(self.upload(mask_file, request), shape=image.shape[:2],
                                   limits=self.settings.limits))
            plan = None
            if mode == "Manual":
                face = FaceChoice(face_id, fidelity, which_faces, min_face, upscale)
                plan = manual_plan(self.specs, kinds or [], detect_id, sensitivity,
                                   inpaint_id, deblur_id, face, mask is not None)
            return self.run(image, plan, mask, progress, budget, colourise, crop_to_print)
        except Exception as exc:
            raise _page_error(exc, "restore the photo") from None

    def inpaint_with_editor(self, photo, editor, inpaint_id, crop_to_print, request: gr.Request,
                            progress=gr.Progress()):
        """Inpaint the mask painted in the editor with ``inpaint_id``."""
        try:
            image = self.load(photo, request)
            mask = editor_mask(editor, image.shape[:2])
            if mask is None or not mask.any():
                raise RestorerError("the mask is empty: paint over the defects first")
            check_defect_mask(mask)
            plan = plan_manual([inpaint_id], self.specs, has_mask=True)
            return self.run(image, plan, mask, progress, crop_to_print=crop_to_print)
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
                controls, manual, editor = controls_panel(pipeline, actions)
                models_panel(models, settings.models_refresh_s)
            with gr.Column(scale=2):
                outputs, colour = results_panel(pipeline)
        wire_events(actions, controls, manual, editor, outputs + [editor.editor], colour)

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
