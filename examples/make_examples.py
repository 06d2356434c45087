"""Regenerate the page's example photos.

    python examples/make_examples.py                        # bundled: synthetic damage (CC0)
    python examples/make_examples.py --real ../shared/data  # real old photos (public domain)

The bundled examples are scikit-image's (CC0) photos with seeded synthetic damage, committed
in examples/. ``--real DATA`` instead copies :data:`REAL_EXAMPLES`, real damaged photos taken
before 1900 (public domain by date; docs/examples.md lists each with its source), from
``DATA/real/`` into examples/real/, which git ignores: the data folder's licences are mixed, so
no photo of it is committed. The page shows the real examples first when they are present.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from restorer import files, synth  # noqa: E402
from restorer.imaging import load_image, save_image  # noqa: E402
from restorer.ops import luminance  # noqa: E402

REAL = HERE / "real"
"""Where ``--real`` puts the real examples (git-ignored)."""
REAL_EXAMPLES = (
    "historic/BoulevardDuTemple1838.jpg",
    "historic/London1850Coach.jpg",
    "historic/NewspaperCivilWar1863.jpg",
    "historic/1870sSphinx.jpg",
    "historic/1888Slum.jpg",
)
"""Real old photos under DATA/real/ shown on the page, each taken before 1900 (docs/examples.md)."""


def make_bundled() -> None:
    """The committed examples: scikit-image photos with seeded synthetic damage."""
    from skimage import data

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


def copy_real(data: Path, out: Path = REAL) -> list[Path]:
    """Copy REAL_EXAMPLES from ``data/real/`` into ``out`` byte for byte (written to a temporary
    name and renamed); SystemExit naming the first photo that is missing."""
    sources = [data / "real" / name for name in REAL_EXAMPLES]
    missing = [str(path) for path in sources if not path.is_file()]
    if missing:
        raise SystemExit(f"real example not found: {missing[0]} (give the shared data folder "
                         "with --real, e.g. ../shared/data)")
    out.mkdir(parents=True, exist_ok=True)
    return [files.write_bytes(out / path.name, path.read_bytes()) for path in sources]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, default=None, metavar="DATA",
                        help="copy the real public-domain examples from DATA/real/ into "
                             "examples/real/ (not committed) instead of making the bundled ones")
    args = parser.parse_args(argv)
    if args.real is None:
        make_bundled()
        return 0
    for path in copy_real(args.real):
        print(f"copied {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
