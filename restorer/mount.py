"""The card mount or scanner bed around a print: found, so that it is never flagged or changed.

A mount is a uniform-ish band along the photo's edges. ``find_print`` walks inwards from each
side while a whole row (column) stays close to the border's own colour and flat (low spread),
and stops at the first line that is not: the print's straight edge. A print slightly rotated on
its mount leaves a wedge of mount inside that box; the region is then refined per pixel (pixels
inside the box that match the mount colour and touch the outer border are mount too).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from restorer.ops import fit_long_side

__all__ = ["PrintRegion", "PrintCrop", "find_print", "crop_to_print"]

#: A line belongs to the mount when at least this share of its pixels lie within _COLOUR_TOL
#: (RGB distance) of the mount colour.
_LINE_SHARE = 0.9
_COLOUR_TOL = 0.08
#: A border thinner than this share of the side is not a mount (edge noise, a scanner's line).
_MIN_BORDER = 0.01


@dataclass(frozen=True)
class PrintRegion:
    """Where the print is: ``mask`` bool (H, W) True on the print, ``box`` (x0, y0, x1, y1)
    (x1, y1 exclusive), ``mounted`` False when the whole photo is print."""

    mask: np.ndarray
    box: tuple[int, int, int, int]
    mounted: bool


def _matches(image: np.ndarray, colour: np.ndarray) -> np.ndarray:
    return np.linalg.norm(image - colour, axis=2) < _COLOUR_TOL


def _depth(matches: np.ndarray, limit: int) -> int:
    """Rows from the top of bool (H, W) ``matches`` that are mount lines."""
    shares = matches.mean(axis=1)
    depth = 0
    while depth < limit and shares[depth] >= _LINE_SHARE:
        depth += 1
    return depth


#: find_print works on a copy at most this many pixels on its long side (bounds its memory).
_WORK_SIDE = 1024


def find_print(image: np.ndarray) -> PrintRegion:
    """The print inside float32 (H, W, 3) [0, 1] ``image`` (all of it when there is no mount)."""
    height, width = image.shape[:2]
    scale = _WORK_SIDE / max(height, width)
    if scale >= 1.0:
        return _find(image)
    found = _find(fit_long_side(image, _WORK_SIDE))
    if not found.mounted:
        return _whole(height, width)
    mask = cv2.resize(found.mask.astype(np.uint8), (width, height),
                      interpolation=cv2.INTER_NEAREST) > 0
    x0, y0, x1, y1 = found.box
    box = (round(x0 / scale), round(y0 / scale), min(width, round(x1 / scale)),
           min(height, round(y1 / scale)))
    return PrintRegion(mask, box, True)


def _find(image: np.ndarray) -> PrintRegion:
    height, width = image.shape[:2]
    ring = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    colour = np.median(ring, axis=0)
    matches = _matches(image, colour)
    if matches[[0, -1]].mean() < _LINE_SHARE or matches[:, [0, -1]].mean() < _LINE_SHARE:
        return _whole(height, width)
    top = _depth(matches, height // 2)
    bottom = _depth(matches[::-1], height // 2)
    left = _depth(matches.T, width // 2)
    right = _depth(matches.T[::-1], width // 2)
    if min(top, bottom) < _MIN_BORDER * height or min(left, right) < _MIN_BORDER * width:
        return _whole(height, width)
    box = (left, top, width - right, height - bottom)
    # Mount pixels inside the box (a rotated print's corners) are those matching the mount
    # colour that connect to the outer border.
    count, labels = cv2.connectedComponents(matches.astype(np.uint8), connectivity=4)
    edge_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    mount = np.isin(labels, edge_labels[edge_labels > 0]) & matches
    mount = cv2.morphologyEx(mount.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    mask = ~mount
    mask[:top] = False
    mask[height - bottom:] = False
    mask[:, :left] = False
    mask[:, width - right:] = False
    return PrintRegion(mask, box, True)


def crop_to_print(image: np.ndarray, region: PrintRegion) -> np.ndarray:
    """``image`` cut to ``region``'s box (a copy)."""
    x0, y0, x1, y1 = region.box
    return image[y0:y1, x0:x1].copy()


@dataclass(frozen=True)
class PrintCrop:
    """A run's crop to the print: ``box`` (x0, y0, x1, y1) in the pixels of the input photo of
    ``shape`` (H, W) (x1, y1 exclusive); ``mounted`` False when no mount was found, and then
    nothing is cropped (the box is the whole photo)."""

    box: tuple[int, int, int, int]
    shape: tuple[int, int]
    mounted: bool

    @classmethod
    def of(cls, region: PrintRegion) -> PrintCrop:
        """The crop to ``region``'s box."""
        return cls(region.box, region.mask.shape, region.mounted)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """``image`` (H', W', ...) of this photo, the input or a result at any scale (the box
        is scaled to its size), cut to the box (a copy); ``image`` itself when not mounted."""
        if not self.mounted:
            return image
        sy, sx = image.shape[0] / self.shape[0], image.shape[1] / self.shape[1]
        x0, y0, x1, y1 = self.box
        return image[round(y0 * sy):round(y1 * sy), round(x0 * sx):round(x1 * sx)].copy()

    def note(self) -> str:
        """One line for reports: where it cropped, or that no mount was found."""
        if not self.mounted:
            return "no mount or scanner bed found round the print: not cropped"
        x0, y0, x1, y1 = self.box
        return (f"cropped to the print: {x1 - x0} x {y1 - y0} px from ({x0}, {y0}) of the "
                f"{self.shape[1]} x {self.shape[0]} scan")

    def report(self) -> dict[str, object]:
        """JSON-ready: box, whether it cropped, the note."""
        return {"box": list(self.box), "cropped": self.mounted, "note": self.note()}


def _whole(height: int, width: int) -> PrintRegion:
    return PrintRegion(np.ones((height, width), bool), (0, 0, width, height), False)
