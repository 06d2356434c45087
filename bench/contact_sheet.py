#!/usr/bin/env python
"""Contact sheets of the real old photos: what triage says, what is masked, what Auto does.

    python bench/contact_sheet.py [--data ../shared/data] --out /tmp/sheets [--max-side 1024]
        [--rows 6] [--folders faded,scratched,low-quality,historic]

For each photo of ``DATA/real/<folder>`` (``historic``: the pre-1900 subset in
:data:`HISTORIC`; the others: every photo) one row: the input | triage's damage labels with
their confidences, the plan and its reason | the defect mask Auto used, in red over the input
| Auto's result (the app's Auto, built as the CLI builds it: ``restorer.service``) | what
changed, ``|result - input|`` times 4. A photo is shrunk to ``--max-side`` px first (the app
accepts larger; this keeps the run within minutes on 2 cores). Sheets of ``--rows`` rows go to
``OUT/<folder>-<n>.png`` and a table (one line per photo) is printed. The photos' licences are
mixed (``../shared/data/SOURCES.md``): the sheets stay outside the repository.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from restorer.imaging import load_image, overlay_mask, to_uint8  # noqa: E402
from restorer.ops import fit_long_side  # noqa: E402
from restorer.result import RestoreResult  # noqa: E402
from restorer.service import build_pipeline  # noqa: E402

FOLDERS = ("faded", "scratched", "low-quality", "historic")
HISTORIC = ("BoulevardDuTemple1838.jpg", "London1850Coach.jpg", "1860sSamauris.png",
            "LondonUnderground1860.jpg", "NewZealand1860s.jpg", "NewspaperCivilWar1863.jpg",
            "1870sSphinx.jpg", "TheatreGroupBombay1875.jpg", "1880Paris.jpg", "Sami1880s.jpg",
            "1888Slum.jpg", "1892WaterLillies.jpg")
"""The historic photos on the sheet: twelve taken before 1900 (dates from the file names)."""
PHOTO_TYPES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
PANEL = 300
"""Height in px of each panel on a sheet."""
TEXT_WIDTH = 330


def photos(data: Path, folder: str) -> list[Path]:
    """The photos of ``data/real/folder`` on its sheet, in name order (historic: HISTORIC)."""
    root = data / "real" / folder
    if folder == "historic":
        return [root / name for name in HISTORIC if (root / name).is_file()]
    return sorted(p for p in root.iterdir() if p.suffix.lower() in PHOTO_TYPES)


def describe(result: RestoreResult) -> list[str]:
    """The text panel: damage labels with confidences (found ones marked), plan, reason."""
    triage = result.triage
    lines = []
    if triage is not None:
        for name, p in sorted(triage.labels.items(), key=lambda item: -item[1]):
            lines.append(f"{'*' if name in triage.found else ' '} {name:<8} {p:4.2f}")
        lines.append(f"  (triage: {triage.method})")
    lines.append("plan: " + (", ".join(result.plan.ids) or "none"))
    words, line = result.plan.reason.split(), ""
    for word in words:  # wrap the reason at about 36 characters
        if len(line) + len(word) > 35:
            lines.append(line)
            line = ""
        line = f"{line} {word}".strip()
    lines.append(line)
    if result.mask is not None:
        lines.append(f"mask: {100 * result.mask.mean():.1f} % of pixels")
    return lines


def text_panel(lines: list[str], height: int) -> np.ndarray:
    """uint8 (height, TEXT_WIDTH, 3) white panel with ``lines`` in a monospaced font."""
    panel = Image.new("RGB", (TEXT_WIDTH, height), "white")
    draw = ImageDraw.Draw(panel)
    try:
        font = ImageFont.truetype("DejaVuSansMono.ttf", 14)
    except OSError:
        font = ImageFont.load_default()
    for row, text in enumerate(lines):
        draw.text((8, 6 + 17 * row), text, fill=(0, 0, 0), font=font)
    return np.asarray(panel)


def sheet_row(name: str, image: np.ndarray, result: RestoreResult) -> np.ndarray:
    """uint8 row: input | labels | mask overlay | result | difference x 4, PANEL px high."""
    scale = PANEL / image.shape[0]
    size = (max(1, round(image.shape[1] * scale)), PANEL)
    mask = result.mask if result.mask is not None else np.zeros(image.shape[:2], bool)
    shown = result.image if result.image.shape == image.shape else cv2.resize(
        result.image, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_AREA)
    change = np.clip(4.0 * np.abs(shown - image), 0.0, 1.0)
    panels = [cv2.resize(to_uint8(p), size, interpolation=cv2.INTER_AREA)
              for p in (image, overlay_mask(image, mask), shown, change)]
    label = text_panel([name, *describe(result)], PANEL)
    gap = np.full((PANEL, 6, 3), 255, np.uint8)
    parts = [panels[0], label, panels[1], panels[2], panels[3]]
    return np.concatenate([x for part in parts for x in (part, gap)][:-1], axis=1)


def stack(rows: list[np.ndarray]) -> np.ndarray:
    """The rows one under another, padded white to the widest, 6 px apart."""
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(padded, axis=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, required=True, help="folder for the sheets (outside the repo)")
    parser.add_argument("--max-side", type=int, default=1024)
    parser.add_argument("--rows", type=int, default=6, help="rows per sheet")
    parser.add_argument("--folders", default=",".join(FOLDERS))
    args = parser.parse_args(argv)
    if REPO in args.out.resolve().parents or args.out.resolve() == REPO:
        parser.error("--out must be outside the repository: the photos' licences are mixed")
    args.out.mkdir(parents=True, exist_ok=True)
    pipeline = build_pipeline()
    print(f"Auto: triage {pipeline.triage_id}, detect {pipeline.auto.detect}, inpaint "
          f"{pipeline.auto.inpaint}, tone {pipeline.auto.tone}, deblur {pipeline.auto.deblur}, "
          f"face {pipeline.auto.face}; photos at most {args.max_side} px")
    print(f"{'photo':<40} {'found':<28} {'plan':<44} {'mask %':>7} {'changed %':>9} {'s':>6}")
    for folder in args.folders.split(","):
        rows: list[np.ndarray] = []
        paths = photos(args.data, folder)
        for index, path in enumerate(paths):
            image = fit_long_side(load_image(path), args.max_side)
            began = time.perf_counter()
            result = pipeline.run(image)
            seconds = time.perf_counter() - began
            changed = 100 * float((np.abs(result.image - image).max(axis=2) > 1 / 255).mean())
            mask = 100 * float(result.mask.mean()) if result.mask is not None else 0.0
            found = ",".join(sorted(result.triage.found)) if result.triage else "-"
            print(f"{folder + '/' + path.name:<40} {found or 'none':<28} "
                  f"{','.join(result.plan.ids) or 'none':<44} {mask:7.2f} {changed:9.2f} {seconds:6.1f}",
                  flush=True)
            rows.append(sheet_row(path.name, image, result))
            if len(rows) == args.rows or index == len(paths) - 1:
                number = index // args.rows + 1
                Image.fromarray(stack(rows)).save(args.out / f"{folder}-{number}.png")
                rows = []
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
