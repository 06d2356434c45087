"""Regenerate the page's example photos: scikit-image's bundled (CC0) photos with seeded damage.

Run from the repo root: python examples/make_examples.py
"""

from pathlib import Path

import numpy as np
from skimage import data

from restorer import synth
from restorer.imaging import load_image, save_image
from restorer.ops import luminance

HERE = Path(__file__).parent


def main() -> None:
    rng = np.random.default_rng(2024)
    astronaut = load_image(data.astronaut())
    sepia = np.clip(luminance(load_image(data.coffee()))[..., None]
                    * np.array([1.07, 0.95, 0.75], np.float32), 0, 1).astype(np.float32)
    camera = load_image(data.camera())
    cases = {
        "cracked-astronaut.jpg": synth.damage(astronaut, rng).image,
        "blurred-cracked-sepia-coffee.jpg": synth.damage(sepia, rng, blurred=True).image,
        "blurred-camera.jpg": synth.blur(camera, rng, strength=2.0),
    }
    for name, image in cases.items():
        save_image(image, HERE / name)


if __name__ == "__main__":
    main()
