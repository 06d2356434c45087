#!/usr/bin/env python
"""The real scratched photo against BOPBTL's predicted scratch mask (a second opinion, not truth).

    python bench/real_pair.py [--data ../shared/data] [--save DIR]

P_d / P_fa of ``detect.segnet`` (default options) and ``detect.print`` (default options; its
crack mask and its whole mask) against the predicted mask of
``real/scratched-with-predicted-mask/`` (thresholded at 0.5), at the photo's own size, in one
run. ``--save`` writes overlays (green: both, blue: only BOPBTL, red: only ours).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from restorer.imaging import load_image  # noqa: E402
from restorer.stages.base import Work  # noqa: E402
from restorer.stages.detect_learned import SegmentationDetector  # noqa: E402
from restorer.stages.detect_print import PrintDetector  # noqa: E402
from restorer.train.detector import detection_rates  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--save", type=Path)
    args = parser.parse_args(argv)
    folder = args.data / "real" / "scratched-with-predicted-mask"
    image = load_image(folder / "scratch_detection_input.png")
    predicted = load_image(folder / "scratch_detection_predmask.png").mean(axis=2)
    if predicted.shape != image.shape[:2]:
        predicted = cv2.resize(predicted, image.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    truth = predicted >= 0.5
    weights = REPO / "weights" / "detector_segnet.safetensors"
    noop = lambda fraction, text: None  # noqa: E731
    segnet, printed = SegmentationDetector(weights), PrintDetector(weights)
    masks = {"detect.segnet": segnet.run(Work(image), SegmentationDetector.spec.defaults,
                                         noop).mask}
    out = printed.run(Work(image), PrintDetector.spec.defaults, noop)
    masks["detect.print (cracks)"] = out.masks["crack"]
    masks["detect.print (all kinds)"] = out.mask
    print(f"# Real pair, {image.shape[1]} x {image.shape[0]} px, BOPBTL flags "
          f"{100 * truth.mean():.2f} %\n\n| detector | P_d vs BOPBTL | P_fa vs BOPBTL | flagged % |"
          "\n|---|---|---|---|")
    for name, mask in masks.items():
        p_fa, p_d = detection_rates(mask, truth)
        print(f"| {name} | {p_d:.3f} | {p_fa:.4f} | {100 * mask.mean():.2f} |")
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            view = image.copy()
            view[mask & truth], view[~mask & truth], view[mask & ~truth] = (0, 1, 0), (0, 0, 1), (1, 0, 0)
            picture = (np.clip(np.hstack([image, view]), 0, 1) * 255).astype(np.uint8)
            name_file = name.replace(" ", "_").replace("(", "").replace(")", "")
            cv2.imwrite(str(args.save / f"{name_file}.png"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
