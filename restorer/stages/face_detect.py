"""Finding faces and aligning them: RetinaFace on a bounded copy, plausible faces, the faces
the options ask for, and the similarity transform to the 512 px FFHQ template.

Faces are detected with facexlib's RetinaFace-ResNet50 on a copy whose long side is at most
``DETECT_SIDE`` px (BGR, 0-255, as the detector was trained). Implausible detections
(non-finite, centre outside the photo, eyes closer than 5 px) are dropped. Each face kept is
aligned to the FFHQ five-point template: a 512 x 512 crop (similarity transform, like
facexlib's FaceRestoreHelper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:
    from restorer.runtime import ModelRuntime, RunInfo

__all__ = ["FACE_SIZE", "FFHQ_TEMPLATE", "DETECT_SIDE", "Face", "plausible_faces",
           "select_faces", "detect_faces", "alignment", "aligned_crop"]

FACE_SIZE = 512
FFHQ_TEMPLATE = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                          [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float32)
"""Where the eyes, nose tip and mouth corners sit (x, y) in a 512 px FFHQ-aligned face."""

DETECT_SIDE = 1600
"""Faces are detected on a copy whose long side is at most this many pixels."""
DETECT_THRESHOLD = 0.97
NMS_THRESHOLD = 0.4
MIN_EYE_DISTANCE = 5.0

#: facexlib's grey outside the photo in aligned crops (RGB of its BGR (135, 133, 132)).
_BORDER = (132 / 255, 133 / 255, 135 / 255)


@dataclass(frozen=True, eq=False)
class Face:
    """A detection in input pixels: box (x0, y0, x1, y1), score, landmarks (5, 2). Compared by identity."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray

    @property
    def side(self) -> float:
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])


def plausible_faces(rows: np.ndarray, scale: float, shape: tuple[int, int]) -> list[Face]:
    """RetinaFace rows (x0, y0, x1, y1, score, 10 landmark coords) found at ``scale`` -> faces."""
    height, width = shape
    faces = []
    for row in np.asarray(rows, dtype=np.float64).reshape(-1, 15):
        if not np.isfinite(row).all():
            continue
        box = row[:4] / scale
        landmarks = (row[5:] / scale).reshape(5, 2)
        size = box[2:] - box[:2]
        centre = (box[:2] + box[2:]) / 2
        if (size <= 0).any() or (size > 2 * max(height, width)).any():
            continue
        if not (0 <= centre[0] < width and 0 <= centre[1] < height):
            continue
        if np.hypot(*(landmarks[0] - landmarks[1])) < MIN_EYE_DISTANCE:
            continue
        faces.append(Face(tuple(float(v) for v in box), float(row[4]), landmarks.astype(np.float32)))
    return faces


def select_faces(faces: list[Face], options: Any, shape: tuple[int, int],
                 max_faces: int) -> tuple[list[Face], list[tuple[Face, str]]]:
    """The faces to restore (detection order) and the others with the reason they are left.

    ``options``: the stage's FaceOptions (its ``faces`` and ``min_size`` are used)."""
    if options.faces == "centre" and faces:
        middle = np.array([shape[1] / 2, shape[0] / 2])
        best = min(faces, key=lambda f: float(np.hypot(*(f.centre - middle))))
        return [best], [(f, "not the centre face") for f in faces if f is not best]
    small = [f for f in faces if options.faces == "large" and f.side < options.min_size]
    skipped = [(f, f"smaller than {options.min_size} px") for f in small]
    chosen = [f for f in faces if f not in small]
    if len(chosen) > max_faces:
        largest = sorted(chosen, key=lambda f: -f.side)[:max_faces]
        skipped += [(f, f"beyond the {max_faces} largest faces") for f in chosen if f not in largest]
        chosen = [f for f in chosen if f in largest]
    return chosen, skipped


def alignment(landmarks: np.ndarray) -> np.ndarray | None:
    """2x3 similarity mapping input pixels to the 512 px aligned crop; None if degenerate."""
    affine, _ = cv2.estimateAffinePartial2D(landmarks, FFHQ_TEMPLATE, method=cv2.LMEDS)
    if affine is None or not np.isfinite(affine).all() or abs(np.linalg.det(affine[:, :2])) < 1e-8:
        return None
    return affine



def detect_faces(detector: ModelRuntime, image: np.ndarray) -> tuple[list[Face], RunInfo]:
    """Plausible faces of float (H, W, 3) ``image``, in detection order, and how the detector
    ran (RetinaFace in its runtime: one call at a time, out of memory on the fallback)."""
    height, width = image.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(height, width))
    small = image if scale == 1.0 else cv2.resize(
        image, (max(1, round(width * scale)), max(1, round(height * scale))),
        interpolation=cv2.INTER_AREA)
    bgr = np.ascontiguousarray(small[..., ::-1] * np.float32(255.0))
    rows, run = detector.apply(
        lambda model, device: model.detect_faces(bgr, DETECT_THRESHOLD, NMS_THRESHOLD))
    return plausible_faces(rows, scale, (height, width)), run


def aligned_crop(image: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The FACE_SIZE x FACE_SIZE crop of float (H, W, 3) ``image`` under ``affine`` (facexlib's
    grey outside the photo), clipped to [0, 1]."""
    crop = cv2.warpAffine(image, affine, (FACE_SIZE, FACE_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=_BORDER)
    return np.clip(crop, 0.0, 1.0)
