"""Every stage's id, in one place: the specs, the planner, the service, the CLI and the page name
stages by these constants, never by string literals. ``<kind>.<method>``; the registry
(restorer.registry.default_registry) lists exactly these (tests/test_contract.py checks it).
"""

from __future__ import annotations

__all__ = [
    "TRIAGE_HEURISTIC", "TRIAGE_NET",
    "DETECT_MORPH", "DETECT_SEGNET", "DETECT_PRINT", "DETECT_LEARNED", "DETECT_SCRATCH",
    "INPAINT_NS", "INPAINT_TELEA", "INPAINT_BIHARMONIC", "INPAINT_EXEMPLAR", "INPAINT_GAN",
    "INPAINT_LAMA",
    "TONE_RESTORE",
    "DEBLUR_RL", "DEBLUR_NAFNET",
    "FACE_GFPGAN",
    "COLOUR_DDCOLOR",
    "ALL",
]

TRIAGE_HEURISTIC = "triage.heuristic"
TRIAGE_NET = "triage.net"

DETECT_MORPH = "detect.morph"
DETECT_SEGNET = "detect.segnet"
DETECT_PRINT = "detect.print"
DETECT_LEARNED = "detect.learned"
DETECT_SCRATCH = "detect.scratch"

INPAINT_NS = "inpaint.ns"
INPAINT_TELEA = "inpaint.telea"
INPAINT_BIHARMONIC = "inpaint.biharmonic"
INPAINT_EXEMPLAR = "inpaint.exemplar"
INPAINT_GAN = "inpaint.gan"
INPAINT_LAMA = "inpaint.lama"

TONE_RESTORE = "tone.restore"

DEBLUR_RL = "deblur.rl"
DEBLUR_NAFNET = "deblur.nafnet"

FACE_GFPGAN = "face.gfpgan"

COLOUR_DDCOLOR = "colour.ddcolor"

#: Every id above, in registration order.
ALL: tuple[str, ...] = (
    TRIAGE_HEURISTIC, TRIAGE_NET,
    DETECT_MORPH, DETECT_SEGNET, DETECT_PRINT, DETECT_LEARNED, DETECT_SCRATCH,
    INPAINT_NS, INPAINT_TELEA, INPAINT_BIHARMONIC, INPAINT_EXEMPLAR, INPAINT_GAN, INPAINT_LAMA,
    TONE_RESTORE,
    DEBLUR_RL, DEBLUR_NAFNET,
    FACE_GFPGAN,
    COLOUR_DDCOLOR,
)
