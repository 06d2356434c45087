"""The page's panels, one function each, and the wiring of their events (UI only: what the
buttons do is app.PageActions, what the page shows is computed in restorer.page)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import pandas as pd

from restorer import Pipeline, StageKind
from restorer.model_status import ModelStatus
from restorer.page import (KINDS, MODEL_COLUMNS, colourise_info, example_files, model_rows,
                           stage_choices)
from restorer.stage_ids import DEBLUR_RL

if TYPE_CHECKING:
    from app import PageActions

__all__ = ["ManualControls", "EditorControls", "ColourOutputs", "controls_panel", "manual_panel",
           "editor_panel", "results_panel", "models_panel", "models_table", "show_colour",
           "wire_events"]

EXAMPLES = Path(__file__).parent / "examples"


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


@dataclass(frozen=True)
class ColourOutputs:
    """The colourisation's own before/after slider (hidden until a colour stage runs) and the
    state that carries its images from a run to it (a state is no output of the API)."""

    slider: Any
    pair: Any


def show_colour(pair: Any) -> tuple[Any, None]:
    """The colour slider's update for the (before, after) ``pair`` of a run (None: hidden),
    and the state emptied (so it holds no photo between runs)."""
    return gr.update(value=pair, visible=pair is not None), None


def manual_panel(pipeline: Pipeline, actions: PageActions) -> ManualControls:
    """Stage choices, face options and the user-mask upload of Manual mode (hidden in Auto);
    a learned stage's choice shows its expected time in a line under it."""
    with gr.Group(visible=False) as box:
        kinds = gr.CheckboxGroup(list(KINDS), value=["detect", "inpaint"],
                                 label="Stages (run in this order)")
        detect_id = gr.Dropdown(stage_choices(pipeline, StageKind.DETECT),
                                value=pipeline.auto.detect, label="Detection")
        detect_time = gr.Markdown(actions.expected(pipeline.auto.detect))
        sensitivity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Detection sensitivity")
        inpaint_id = gr.Dropdown(stage_choices(pipeline, StageKind.INPAINT),
                                 value=pipeline.auto.inpaint, label="Inpainting")
        inpaint_time = gr.Markdown(actions.expected(pipeline.auto.inpaint))
        deblur_id = gr.Dropdown(stage_choices(pipeline, StageKind.DEBLUR), value=DEBLUR_RL,
                                label="Deblur")
        deblur_time = gr.Markdown("")
        face_choices = stage_choices(pipeline, StageKind.FACE)
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


def editor_panel(pipeline: Pipeline) -> EditorControls:
    """The accordion where the defect mask is corrected by hand and inpainted again."""
    with gr.Accordion("Correct the defect mask and inpaint again", open=False):
        editor = gr.ImageEditor(label="Paint defects with the brush, erase mistakes",
                                type="numpy", brush=gr.Brush(colors=["#ff0000"], default_size=8),
                                sources=(), transforms=())
        method = gr.Dropdown(stage_choices(pipeline, StageKind.INPAINT),
                             value=pipeline.auto.inpaint,
                             label="Inpainting")
        rerun = gr.Button("Inpaint with this mask")
    return EditorControls(editor, method, rerun)


def results_panel(pipeline: Pipeline) -> tuple[list[Any], ColourOutputs]:
    """The outputs every action fills: note, labels, slider, overlay, mask, restored photo,
    timings, report (the editor is appended by the caller); and the colourisation's own."""
    triage_spec = pipeline.registry.spec(pipeline.triage_id)
    note = gr.Markdown(f"Triage: **{triage_spec.title}**: {triage_spec.description}")
    labels = gr.Label(label="Damage labels: each its own confidence (Auto repairs those at 50 % "
                            "or more)", show_heading=False)
    slider = gr.ImageSlider(label="Before (left) / after (right): drag to compare",
                            type="numpy", format="png")
    # The state is emptied at once by show_colour in a browser; an API client runs no
    # follow-up event, so its pair is dropped after time_to_live seconds.
    colour = ColourOutputs(
        gr.ImageSlider(label="Colourisation only: repaired grey or sepia (left) / colourised "
                             "(right)", type="numpy", format="png", visible=False),
        gr.State(None, time_to_live=120))
    with gr.Row():
        overlay = gr.Image(label="Defects by kind (red cracks, yellow spots, blue creases, "
                                 "magenta tears; the note above has the shares)", format="png",
                           interactive=False)
        mask_out = gr.Image(label="Defect mask (white = defect)", format="png", image_mode="L",
                            interactive=False)
    restored = gr.Image(label="Restored photo (full-resolution PNG)", format="png",
                        interactive=False)
    timings = gr.BarPlot(x="stage", y="seconds", title="Seconds per stage", height=220)
    report = gr.JSON(label="Report")
    return [note, labels, slider, overlay, mask_out, restored, timings, report], colour


def models_table(models: ModelStatus | None) -> pd.DataFrame:
    """The Models panel's table (restorer.page.model_rows)."""
    return pd.DataFrame(model_rows(models), columns=MODEL_COLUMNS)


def models_panel(models: ModelStatus | None, refresh_s: float) -> None:
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


def controls_panel(pipeline: Pipeline, actions: PageActions
                   ) -> tuple[dict[str, Any], ManualControls, EditorControls]:
    """The left column: photo, mode, Auto's time budget and colourisation, the crop to the
    print, Manual controls, buttons, examples, editor."""
    photo = gr.Image(label="Old photo", type="filepath", image_mode=None,
                     sources=["upload", "clipboard"], height=360)
    mode = gr.Radio(["Auto", "Manual"], value="Auto", label="Mode")
    budget = pipeline.time_budget
    time_budget = gr.Number(budget, minimum=0, label="Auto: seconds the published models may "
                            "take (slower ones are replaced by classical fills; empty: no limit)")
    colourise = gr.Checkbox(False, label="Colourise (black-and-white / sepia prints)",
                            info=colourise_info(pipeline))
    crop = gr.Checkbox(False, label="Crop to the print (cut off the card mount or scanner bed "
                                    "when one is found)")
    manual = manual_panel(pipeline, actions)
    with gr.Row():
        detect_button = gr.Button("Find defects")
        run_button = gr.Button("Restore", variant="primary")
    examples, examples_label = example_files(EXAMPLES)
    if examples:
        gr.Examples([[str(p)] for p in examples], inputs=[photo], label=examples_label)
    editor = editor_panel(pipeline)
    controls = {"photo": photo, "mode": mode, "time_budget": time_budget,
                "colourise": colourise, "crop": crop, "detect_button": detect_button,
                "run_button": run_button}
    return controls, manual, editor


def wire_events(actions: PageActions, controls: dict[str, Any], manual: ManualControls,
                editor: EditorControls, outputs: list[Any], colour: ColourOutputs) -> None:
    """The events: mode switch, expected-time lines, Restore, Find defects, Inpaint again;
    each of the last three then shows or hides the colourisation's own before/after."""
    controls["mode"].change(lambda m: (gr.update(visible=m == "Manual"),
                                       gr.update(visible=m == "Auto")), controls["mode"],
                            [manual.box, controls["colourise"]], api_visibility="private")
    for dropdown, line in manual.expected:
        dropdown.change(actions.expected, dropdown, line, api_visibility="private")
    m = manual
    outputs = outputs + [colour.pair]
    events = [controls["run_button"].click(
        actions.restore, [controls["photo"], controls["mode"], m.kinds, m.detect_id,
                          m.sensitivity, m.inpaint_id, m.deblur_id, m.mask_file, m.face_id,
                          m.fidelity, m.which_faces, m.min_face, m.upscale,
                          controls["time_budget"], controls["colourise"], controls["crop"]],
        outputs, api_name="restore", preprocess=False)]
    events.append(editor.rerun.click(actions.inpaint_with_editor,
                                     [controls["photo"], editor.editor, editor.method,
                                      controls["crop"]], outputs, api_visibility="private"))
    events.append(controls["detect_button"].click(actions.detect, [controls["photo"], m.detect_id,
                                                                   m.sensitivity], outputs,
                                                  api_name="detect", preprocess=False))
    for event in events:  # after a failed run the page keeps showing the last good one
        event.success(show_colour, colour.pair, [colour.slider, colour.pair],
                      api_visibility="private")
