"""The contract every registered stage keeps, checked for each stage of the default registry.

Spec complete; float32 (H, W, 3) in [0, 1] in and out (a bool (H, W) mask, a triage with
probabilities); the input is not modified; inpainting changes only masked pixels; a grey photo
stays grey (R = G = B) unless the stage colourises; four threads at once give what one gives;
two runs give the same result. Stages whose published files are not here run with stand-in
weights (tests/standins.py; face.gfpgan with narrow networks as in test_face.py), the others
with the bundled files. A stage added to the registry is checked here without further work.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from restorer import stage_ids
from restorer.registry import default_registry
from restorer.stages.base import (DAMAGE_LABELS, TRIAGE_LABELS, Option, Stage, StageKind,
                                  StageOutput, TriageResult, Work)
from restorer.weights import default_manifest_path, load_manifest

try:
    from tests.threads_support import at_once
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from threads_support import at_once

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
HEIGHT, WIDTH = 64, 96
FIELDS = frozenset({"image", "mask", "triage"})
#: Options that keep a stage's work small on a 64 x 96 photo (the rest are the defaults).
OPTIONS: dict[str, dict[str, Any]] = {
    "face.gfpgan": {"faces": "centre"},
    "colour.ddcolor": {"working_size": 256},
    "inpaint.lama": {"working_side": 64, "margin": 16},
}
#: Stages that take seconds to build on two cores (stand-in files of 100 to 220 MB, or
#: TensorFlow): run by `make test`, left out of `make test-fast`.
SLOW = frozenset({"face.gfpgan", "colour.ddcolor", "inpaint.lama", "triage.net"})
#: (stage id, check) -> why the stage does not keep that part of the contract today.
KNOWN_BREACHES: dict[tuple[str, str], str] = {}

SPECS = default_registry().specs()
pytestmark = pytest.mark.usefixtures("two_torch_threads")


def _params(check: str) -> list[Any]:
    params = []
    for spec in SPECS:
        marks = [pytest.mark.slow] if spec.id in SLOW else []
        reason = KNOWN_BREACHES.get((spec.id, check))
        if reason:
            marks.append(pytest.mark.xfail(reason=reason, strict=True))
        params.append(pytest.param(spec.id, marks=marks, id=spec.id))
    return params


def quiet(fraction: float, text: str) -> None:
    """A progress callback that ignores its reports."""


def photo(seed: int = 0, *, grey: bool = False) -> np.ndarray:
    """A seeded 64 x 96 float32 RGB photo in [0, 1]: gradients, a disc, fine texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    base = np.stack([x / WIDTH, y / HEIGHT, 0.5 + 0.3 * np.sin(x / (5 + seed))], axis=-1)
    base[(y - HEIGHT / 2) ** 2 + (x - WIDTH / 3) ** 2 < (HEIGHT / 5) ** 2] = 0.9
    image = np.clip(base + rng.normal(0, 0.03, base.shape), 0, 1).astype(np.float32)
    if grey:
        image = np.repeat(image.mean(axis=2, keepdims=True), 3, axis=2)
    return np.ascontiguousarray(image)


def defect_mask(seed: int = 0) -> np.ndarray:
    """A bool (H, W) mask: a 1 px crack, a 3 px scratch and a hole."""
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[10 + seed, 4:90] = True
    mask[20:50, 60 + seed:63 + seed] = True
    mask[40:52, 20:34] = True
    return mask


def work(seed: int = 0, *, grey: bool = False) -> Work:
    """What a stage may need: the photo, a defect mask and a triage."""
    triage = TriageResult(confidences={"clean": 0.1, "blurred": 0.2, "cracked": 0.3,
                                       "blurred+cracked": 0.4},
                          blurred=True, cracked=True, method="contract",
                          labels={label: 0.6 for label in DAMAGE_LABELS})
    return Work(image=photo(seed, grey=grey), mask=defect_mask(seed), triage=triage)


class Stages:
    """Stages of the default registry built once each (bundled files, or the session's
    stand-ins), and each stage's output on ``work(seed)``, computed once."""

    def __init__(self, folder: Path, standins: Any) -> None:
        self.folder = folder
        self.standins = standins
        self.manifest = load_manifest(default_manifest_path())
        self._lock = threading.Lock()
        self._stages: dict[str, Stage] = {}
        self._solo: dict[tuple[str, int], StageOutput] = {}
        self.registry = default_registry(weight_check=lambda weight_id: True,
                                         weight_path=self.path,
                                         weight_entry=self.manifest.get, device="cpu")

    def path(self, weight_id: str) -> Path:
        """The bundled file of ``weight_id``, or its stand-in."""
        entry = self.manifest.get(weight_id)
        if entry.bundled:
            return WEIGHTS / entry.local_name
        if weight_id not in self.standins:
            pytest.skip(f"no stand-in for weight '{weight_id}': add a writer to "
                        "tests/standins.py")
        return self.standins.path(weight_id)

    def build(self, stage_id: str) -> Stage:
        with self._lock:
            if stage_id not in self._stages:
                self._stages[stage_id] = (_small_face(self.folder) if stage_id == "face.gfpgan"
                                          else self.registry.build(stage_id))
            return self._stages[stage_id]

    def solo(self, stage_id: str, seed: int, item: Work | None = None) -> StageOutput:
        """The stage's output on ``work(seed)`` (given as ``item``, or made here), run once
        alone."""
        if (stage_id, seed) not in self._solo:
            self._solo[stage_id, seed] = run(self, stage_id, item or work(seed))
        return self._solo[stage_id, seed]


def _small_face(folder: Path) -> Stage:
    """face.gfpgan over narrow random networks (a forward in a fraction of a second)."""
    from restorer.stages.face import (GFPGAN_V14_ARCH, PARSENET_ARCH, FaceArchitectures,
                                      GfpganFace, write_standin_weights)
    from restorer.weights import WeightStore

    small = FaceArchitectures(
        gfpgan={**GFPGAN_V14_ARCH, "narrow": 0.0625},
        parsenet={**PARSENET_ARCH, "base_ch": 8, "res_depth": 1, "ch_range": [8, 32]})
    manifest = write_standin_weights(folder / "face", archs=small, seed=0)
    store = WeightStore(manifest, bundled_dir=folder / "face", cache_dir=folder / "hub",
                        offline=True)
    return GfpganFace(lambda wid: store.resolve(wid, download=False), device="cpu", archs=small)


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory, standin_files: Any) -> Stages:
    return Stages(tmp_path_factory.mktemp("contract-weights"), standin_files)


def run(stages: Stages, stage_id: str, item: Work) -> StageOutput:
    stage = stages.build(stage_id)
    options = stage.spec.resolve_options(OPTIONS.get(stage_id, {}))
    return stage.run(item, options, quiet)


def same(a: StageOutput, b: StageOutput) -> bool:
    """The two outputs hold equal images, masks and triage probabilities."""
    for name in ("image", "mask"):
        x, y = getattr(a, name), getattr(b, name)
        if (x is None) != (y is None) or (x is not None and not np.array_equal(x, y)):
            return False
    if (a.triage is None) != (b.triage is None):
        return False
    return a.triage is None or (dict(a.triage.confidences) == dict(b.triage.confidences)
                                and dict(a.triage.labels) == dict(b.triage.labels))


# --------------------------------------------------------------------------------- the spec
def test_the_registry_lists_exactly_the_stage_ids_of_restorer_stage_ids() -> None:
    assert tuple(spec.id for spec in SPECS) == stage_ids.ALL
    assert {getattr(stage_ids, name) for name in stage_ids.__all__ if name != "ALL"} == \
        set(stage_ids.ALL)


@pytest.mark.parametrize("stage_id", [spec.id for spec in SPECS])
def test_spec_is_complete(stage_id: str) -> None:
    spec = default_registry().spec(stage_id)
    kind, _, method = spec.id.partition(".")
    assert isinstance(spec.kind, StageKind) and kind == spec.kind.value and method
    assert spec.method and spec.title.strip() and spec.description.strip()
    assert spec.requires and spec.requires <= FIELDS, spec.requires
    assert spec.produces and spec.produces <= FIELDS, spec.produces
    assert "image" in spec.requires
    manifest = load_manifest(default_manifest_path())
    assert all(weight_id in manifest for weight_id in spec.weights), spec.weights
    for name, option in spec.options.items():
        assert isinstance(option, Option) and name.isidentifier()
        assert option.help.strip(), f"option '{name}' has no help text"
        assert option.kind in ("number", "integer", "flag", "choice")
        if option.kind in ("number", "integer"):
            assert option.low is not None and option.high is not None and option.low <= option.high
        assert option.check(name, option.default) == option.default or option.default is None


# --------------------------------------------------------------------------------- one run
@pytest.mark.parametrize("stage_id", _params("output"))
def test_output_types_shapes_and_ranges(stages: Stages, stage_id: str) -> None:
    item = work(0)
    before = (item.image.copy(), item.mask.copy())
    out = stages.solo(stage_id, 0, item)
    assert np.array_equal(item.image, before[0]) and np.array_equal(item.mask, before[1]), \
        "the stage modified its input in place"
    spec = stages.build(stage_id).spec
    assert spec == stages.registry.spec(stage_id)
    for name in spec.produces:
        assert getattr(out, name) is not None, f"declares it produces {name}, gave none"
    if out.image is not None:
        assert out.image.dtype == np.float32 and out.image.shape == (HEIGHT, WIDTH, 3)
        assert np.isfinite(out.image).all()
        assert out.image.min() >= 0.0 and out.image.max() <= 1.0
    if out.mask is not None:
        assert out.mask.dtype == bool and out.mask.shape == (HEIGHT, WIDTH)
    for part in (out.masks or {}).values():
        assert part.dtype == bool and part.shape == (HEIGHT, WIDTH)
        assert not (part & ~out.mask).any(), "a kind's mask reaches outside the whole mask"
    if out.triage is not None:
        probabilities = out.triage.confidences
        assert set(probabilities) <= set(TRIAGE_LABELS)
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert all(0.0 <= p <= 1.0 for p in [*probabilities.values(), *out.triage.labels.values()])
        assert set(out.triage.labels) <= set(DAMAGE_LABELS)


@pytest.mark.parametrize("stage_id", _params("masked"))
def test_inpainting_changes_only_masked_pixels(stages: Stages, stage_id: str) -> None:
    if stages.registry.spec(stage_id).kind != StageKind.INPAINT:
        pytest.skip("not an inpainting stage")
    item = work()
    out = run(stages, stage_id, item)
    assert np.array_equal(out.image[~item.mask], item.image[~item.mask])
    assert not np.array_equal(out.image[item.mask], item.image[item.mask]), "it filled nothing"


@pytest.mark.parametrize("stage_id", _params("grey"))
def test_a_grey_photo_stays_grey(stages: Stages, stage_id: str) -> None:
    spec = stages.registry.spec(stage_id)
    if "image" not in spec.produces or spec.kind == StageKind.COLOUR:
        pytest.skip("gives no image" if "image" not in spec.produces else "colourises")
    out = run(stages, stage_id, work(grey=True)).image
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


@pytest.mark.parametrize("stage_id", _params("deterministic"))
def test_two_runs_give_the_same_result(stages: Stages, stage_id: str) -> None:
    assert same(stages.solo(stage_id, 0), run(stages, stage_id, work(0)))


@pytest.mark.parametrize("stage_id", _params("threads"))
def test_four_threads_at_once_give_what_one_gives(stages: Stages, stage_id: str) -> None:
    seeds = [0, 1, 0, 1]   # two different photos: crosstalk would show
    items = [work(seed) for seed in seeds]
    alone = [stages.solo(stage_id, seed) for seed in seeds]
    results = at_once([functools.partial(run, stages, stage_id, item) for item in items])
    for got, want in zip(results, alone):
        assert isinstance(got, StageOutput), got
        assert same(got, want)
