"""How faded a print looks: contrast lost and colour cast, as a probability for triage.

``measure_fade`` reads a photo's tonal range (the luma, Rec. 601 weights of the sRGB values, that
the darkest and the lightest 0.5 % reach: the space fading lifts and lowers) and the cast of its highlights (mean a*, b* of the lightest tenth, where a
faded colour print shows its aged dyes). Toned and grayscale prints are judged on contrast only:
sepia is a tone, not a fault. Part A's triage takes ``fade_probability`` as its "faded" label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from restorer.ops import fit_long_side, luminance
from restorer.tone import MEASURE_SIDE, ToneKind, analyse_tone

__all__ = ["FadeMeasure", "measure_fade", "fade_probability", "faded_label"]

#: Logistic calibration of the fade score (see bench/tone.py): score = contrast_lost +
#: cast / _CAST_SCALE; probability 0.5 at _THRESHOLD, slope _SLOPE per unit of score.
_CAST_SCALE = 120.0
_THRESHOLD = 0.40
_SLOPE = 25.0
#: Contrast lost at which a grey or toned print is called faded (probability 0.5) by
#: :func:`faded_label`. On the shared photos 6 of 98 grey or toned historic prints reach it, and
#: 9 of 187 clean grey Yale B faces (lit from the side in a dark room: low contrast, not faded);
#: at 0.30 those were 12 and 46. The clean colour photos are colour prints: no label.
_MONO_THRESHOLD = 0.40
#: A toned (sepia, gold, selenium) print is an old print: it is called faded (probability 0.5
#: each) when it has lost _TONED_THRESHOLD of the luma range AND its darkest tones are lifted
#: to _TONED_BLACK. A fresh silver or albumen print reaches near-black (luma under 0.05); a
#: faded one does not, while a dark film frame or a night scene loses range at the top with
#: blacks intact. On the shared photos: 16 of 44 toned historic prints are faded by this rule
#: (the pale sepia ones by eye), 0 of 13 toned film frames, and no clean modern photo is
#: toned (bsds-test 0 of 200, kodak24 0 of 24, CelebA-HQ 0 of 28).
_TONED_THRESHOLD = 0.22
_TONED_BLACK = 0.10
_BLACK_SLOPE = 60.0


@dataclass(frozen=True)
class FadeMeasure:
    """A photo's fade.

    ``probability`` in [0, 1] that the print is faded or cast; ``contrast_lost`` in [0, 1]
    (1 - the share of the luma range the print spans); ``black``, ``white`` in [0, 1]: the luma
    of its darkest and lightest 0.5 %; ``cast_a``, ``cast_b``: CIELAB a*, b* of its highlights
    (0 for toned and grayscale prints); ``cast`` their length; ``tone``: colour, grayscale or
    toned.
    """

    probability: float
    contrast_lost: float
    black: float
    white: float
    cast_a: float
    cast_b: float
    tone: ToneKind

    @property
    def cast(self) -> float:
        """Size of the highlight cast in CIELAB units."""
        return math.hypot(self.cast_a, self.cast_b)


def measure_fade(image: np.ndarray, region: np.ndarray | None = None) -> FadeMeasure:
    """Measure float32 (H, W, 3) [0, 1] ``image`` (only where bool (H, W) ``region`` is True:
    e.g. the print without its mount)."""
    small = fit_long_side(image, MEASURE_SIDE)
    lab = cv2.cvtColor(np.ascontiguousarray(small, dtype=np.float32), cv2.COLOR_RGB2Lab)
    pixels = lab.reshape(-1, 3)
    luma = luminance(small).reshape(-1)
    if region is not None:
        keep = cv2.resize(region.astype(np.uint8), small.shape[1::-1],
                          interpolation=cv2.INTER_NEAREST).reshape(-1) > 0
        if keep.sum() >= 64:
            pixels, luma = pixels[keep], luma[keep]
    lightness = pixels[:, 0]
    low, high = np.percentile(luma, [0.5, 99.5])
    contrast_lost = float(np.clip(1.0 - (high - low), 0.0, 1.0))
    tone = analyse_tone(small).kind
    cast_a = cast_b = 0.0
    if tone == "colour":
        bright = pixels[lightness >= np.percentile(lightness, 90.0)]
        cast_a, cast_b = float(bright[:, 1].mean()), float(bright[:, 2].mean())
    score = contrast_lost + math.hypot(cast_a, cast_b) / _CAST_SCALE
    probability = 1.0 / (1.0 + math.exp(-_SLOPE * (score - _THRESHOLD)))
    return FadeMeasure(float(probability), contrast_lost, float(low), float(high), cast_a, cast_b,
                       tone)


def fade_probability(image: np.ndarray) -> float:
    """The probability in [0, 1] that float32 (H, W, 3) ``image`` is faded (triage's label)."""
    return measure_fade(image).probability


def faded_label(image: np.ndarray) -> float | None:
    """Triage's "faded" label of float32 (H, W, 3) [0, 1] ``image``: the probability that a
    grey print has lost its contrast (from the contrast lost), or that a toned print has lost
    it with its blacks lifted (module constants); None ("not measured") for a colour print.

    A colour print's global statistics do not tell faded dyes from a warm or cast scene: on the
    shared photos the highlight cast, the coherence of the chroma and the tonal range of the
    8 real faded prints all lie inside those of 200 clean modern photos (a golden-hour field
    is "faded" by each of them), so no number is made up for colour; the tone stage stays one
    the user picks for those (Manual).
    """
    measure = measure_fade(image)
    if measure.tone == "colour":
        return None
    if measure.tone == "toned":
        lost = _logistic(_SLOPE * (measure.contrast_lost - _TONED_THRESHOLD))
        return lost * _logistic(_BLACK_SLOPE * (measure.black - _TONED_BLACK))
    return _logistic(_SLOPE * (measure.contrast_lost - _MONO_THRESHOLD))


def _logistic(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))
