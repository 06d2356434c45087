"""Train the inpainting networks of seed paper 000 (reconstruction network + two critics).

    python -m restorer.train.inpaint --data ../shared/data --out weights --config cpu --seed 0

Data (``--data``): clean photos, split by source photo so that the benchmark's photos are never
seen: kodak24 (all), bsds-test[:100], faces-celebahq[:14] (resized to 512 and 256 px long
side), faces-gray-yaleb (all; the benchmark does not use them). Irregular masks:
``masks/irregular`` except every fourth file (those are the benchmark's).

Every step draws a fresh batch: random crops (random flips), each with a hole of one family,
at a random position: a thin crack or scratch from :mod:`restorer.synth` (painted onto the
crop, mask = coverage >= 0.3, as the detector's truth), the paper's fixed-size square, or a
crop of an irregular mask (randomly scaled, flipped, rotated). The holes are pre-filled with
Navier-Stokes exactly as the stage does (:class:`NavierStokesInpainter`, radius 3).

Losses (the paper's): reconstruction ``alpha * L1 + beta * BCE(global critic(completed), real)
+ gamma * BCE(local critic(patch around the hole), real)``; the critics learn with binary
cross-entropy on the completed crop (network output inside the hole, clean outside) against
the clean crop. Adam, learning rates 1e-4 (reconstruction) and 1e-5 (each critic); alpha = 30,
beta = gamma = 0.01.

One deviation: the L1 term is taken on the completed crop and averaged over each crop's hole
(then over the batch), where the paper averages the raw output's error over the whole image.
Our network corrects a Navier-Stokes pre-fill (see :mod:`restorer.nets.inpaint_gan`), so
outside the hole it only has to say "no change", and with the paper's L1 that dominated: in
the CPU configuration the validation hole PSNR had not moved from the pre-fill's 23.964 dB after
600 steps, while the hole-averaged L1 gained 0.14 dB in 300 steps. Averaging per crop also
keeps thin cracks (2-5 % of a crop) from being outweighed by large holes.

Schedule: (1) reconstruction alone with L1 for ``steps_l1`` steps; (2) critics alone for
``steps_critic`` steps; (3) joint adversarial training for ``steps_joint`` steps. For the
ablation "without the critics", the phase-(1) network also continues with L1 alone for the
same ``steps_joint`` steps and is saved next to it, so both networks have had exactly the same
number of reconstruction updates.

Writes into ``--out``: ``inpaint_gan.safetensors`` (adversarial), ``inpaint_gan_l1.safetensors``
(L1 only), both fp16 with the architecture in the metadata, and ``inpaint_gan_train.json`` (the
config, timings and the loss/validation curve).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from restorer import synth
from restorer.imaging import load_image
from restorer.ops import fit_long_side
from restorer.nets.inpaint_gan import (GLOBAL_CRITIC_LAYERS, LOCAL_CRITIC_LAYERS, Critic,
                                       InpaintArch, Reconstructor, save_reconstructor)
from restorer.stages.inpaint import NavierStokesInpainter

__all__ = ["CONFIGS", "TrainConfig", "heldout_masks", "read_hole_mask", "train_split", "main"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".tif")
FAMILIES = ("crack", "square", "irregular")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (the seed is given separately)."""

    arch: InpaintArch
    batch: int
    steps_l1: int
    steps_critic: int
    steps_joint: int
    square: int
    lr_g: float = 1e-4
    lr_d: float = 1e-5
    alpha: float = 30.0
    beta: float = 0.01
    gamma: float = 0.01
    #: probabilities of the hole families (crack, square, irregular) per crop.
    family_p: tuple[float, float, float] = (0.5, 0.2, 0.3)
    #: share of face crops (CelebA-HQ and Yale B); the rest are natural photos.
    face_share: float = 0.5
    validate_every: int = 250
    notes: str = ""


CONFIGS: dict[str, TrainConfig] = {
    # The paper's network widths (64/128/256) on 128 px crops; for a GPU host.
    "full": TrainConfig(arch=InpaintArch(width=64, crop=128, local=64), batch=32,
                        steps_l1=20000, steps_critic=2000, steps_joint=40000, square=48,
                        notes="paper widths; for a GPU"),
    # Sized to train in about 40 minutes on 2 shared CPU cores: half the widths (32/64/128),
    # 64 px crops, batch 8, about 1/20 of the steps, and twice the paper's learning rates.
    "cpu": TrainConfig(arch=InpaintArch(width=32, crop=64, local=32), batch=8,
                       steps_l1=2000, steps_critic=200, steps_joint=1000, square=24,
                       lr_g=2e-4, lr_d=2e-5, validate_every=200,
                       notes="half widths, 64 px crops, batch 8, 2x learning rates; for a CPU"),
}


# ----------------------------------------------------------------------------------- data
def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def train_split(data: Path) -> dict[str, list[Path]]:
    """Training photos by group ("faces", "natural"); the benchmark's photos are excluded."""
    clean = data / "clean"
    faces = _files(clean / "faces-celebahq")[:14] + _files(clean / "faces-gray-yaleb")
    natural = _files(clean / "kodak24") + _files(clean / "bsds-test")[:100]
    if not faces or not natural:
        raise SystemExit(f"no training photos under {clean} (need faces-* and kodak24/bsds-test)")
    return {"faces": faces, "natural": natural}


def heldout_masks(data: Path) -> list[Path]:
    """The irregular masks kept for the benchmark (every fourth file)."""
    return _files(data / "masks" / "irregular")[::4]


def read_hole_mask(path: Path) -> np.ndarray:
    """An irregular-mask file (white = hole) as bool (H, W), read through restorer.imaging:
    a pixel is a hole above half brightness."""
    return load_image(path)[..., 0] > 0.5


def _training_masks(data: Path) -> list[np.ndarray]:
    files = _files(data / "masks" / "irregular")
    held = set(heldout_masks(data))
    masks = [read_hole_mask(p) for p in files if p not in held]
    if not masks:
        raise SystemExit(f"no irregular masks under {data / 'masks' / 'irregular'}")
    return masks


def _load_pool(paths: dict[str, list[Path]]) -> dict[str, list[np.ndarray]]:
    pool: dict[str, list[np.ndarray]] = {"faces": [], "natural": []}
    for group, files in paths.items():
        for path in files:
            image = load_image(path)
            if max(image.shape[:2]) > 512:  # CelebA-HQ: the sizes the app meets (512, 256)
                pool[group] += [fit_long_side(image, 512), fit_long_side(image, 256)]
            else:
                pool[group].append(image)
    return pool


class Sampler:
    """Seeded batches: (damaged+prefilled, mask, clean, local-patch corners)."""

    def __init__(self, pool: dict[str, list[np.ndarray]], masks: list[np.ndarray],
                 config: TrainConfig, rng: np.random.Generator) -> None:
        self.pool, self.masks, self.config, self.rng = pool, masks, config, rng
        self.prefill = NavierStokesInpainter()
        self.options = NavierStokesInpainter.spec.defaults

    def _crop(self) -> np.ndarray:
        group = "faces" if self.rng.random() < self.config.face_share else "natural"
        images = self.pool[group]
        image = images[int(self.rng.integers(len(images)))]
        size = self.config.arch.crop
        height, width = image.shape[:2]
        y = int(self.rng.integers(height - size + 1))
        x = int(self.rng.integers(width - size + 1))
        crop = image[y:y + size, x:x + size]
        if self.rng.random() < 0.5:
            crop = crop[:, ::-1]
        return np.ascontiguousarray(crop)

    def _hole(self, family: str, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(damaged image, bool mask) for one crop."""
        size = self.config.arch.crop
        if family == "crack":
            count = int(self.rng.integers(1, 4))
            damaged = synth.damage(clean, self.rng, crack_count=(count, count))
            if damaged.mask.any():
                return damaged.image, damaged.mask
            family = "square"
        if family == "square":
            side = self.config.square
            mask = np.zeros((size, size), bool)
            y, x = self.rng.integers(0, size - side + 1, 2)
            mask[y:y + side, x:x + side] = True
            return clean, mask
        for _ in range(20):
            source = self.masks[int(self.rng.integers(len(self.masks)))]
            scale = self.rng.uniform(size / 512 * 2, 1.0)
            scaled = cv2.resize(source.astype(np.uint8), None, fx=scale, fy=scale,
                                interpolation=cv2.INTER_NEAREST)
            if min(scaled.shape) < size:
                continue
            y = int(self.rng.integers(scaled.shape[0] - size + 1))
            x = int(self.rng.integers(scaled.shape[1] - size + 1))
            mask = np.rot90(scaled[y:y + size, x:x + size] > 0, int(self.rng.integers(4)))
            if 0.02 <= mask.mean() <= 0.6:
                return clean, np.ascontiguousarray(mask)
        return self._hole("square", clean)

    def _local_corner(self, mask: np.ndarray) -> tuple[int, int]:
        """Top-left of the local critic's patch: centred on the hole's box, inside the crop."""
        size, local = self.config.arch.crop, self.config.arch.local
        ys, xs = np.nonzero(mask)
        cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
        return (int(np.clip(cy - local // 2, 0, size - local)),
                int(np.clip(cx - local // 2, 0, size - local)))

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        prefilled, masks, cleans, corners = [], [], [], []
        for _ in range(self.config.batch):
            clean = self._crop()
            family = FAMILIES[int(self.rng.choice(3, p=self.config.family_p))]
            damaged, mask = self._hole(family, clean)
            filled = damaged.copy()
            filled[mask] = self.prefill.fill(damaged, mask, self.options)[mask]
            prefilled.append(filled)
            masks.append(mask)
            cleans.append(clean)
            corners.append(self._local_corner(mask))

        def nchw(arrays: list[np.ndarray]) -> torch.Tensor:
            stacked = np.stack(arrays).astype(np.float32)
            return torch.from_numpy(stacked if stacked.ndim == 4 else stacked[..., None]
                                    ).permute(0, 3, 1, 2).contiguous()

        return nchw(prefilled), nchw(masks), nchw(cleans), corners


# ----------------------------------------------------------------------------------- training
def _patches(images: torch.Tensor, corners: list[tuple[int, int]], local: int) -> torch.Tensor:
    return torch.stack([image[:, y:y + local, x:x + local] for image, (y, x) in zip(images, corners)])


@dataclass
class Trainer:
    """The three networks and their optimisers."""

    config: TrainConfig
    generator: Reconstructor
    global_critic: Critic
    local_critic: Critic

    def __post_init__(self) -> None:
        c = self.config
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=c.lr_g)
        self.opt_d = torch.optim.Adam(list(self.global_critic.parameters())
                                      + list(self.local_critic.parameters()), lr=c.lr_d)
        self.bce = nn.BCEWithLogitsLoss()

    def _critic_loss(self, clean, completed, corners) -> torch.Tensor:
        local = self.config.arch.local
        real_g, fake_g = self.global_critic(clean), self.global_critic(completed)
        real_l = self.local_critic(_patches(clean, corners, local))
        fake_l = self.local_critic(_patches(completed, corners, local))
        ones, zeros = torch.ones_like(real_g), torch.zeros_like(real_g)
        return (self.bce(real_g, ones) + self.bce(fake_g, zeros)
                + self.bce(real_l, ones) + self.bce(fake_l, zeros))

    def step(self, batch, *, train_g: bool, adversarial: bool, train_d: bool) -> dict[str, float]:
        prefill, mask, clean, corners = batch
        c = self.config
        out: dict[str, float] = {}
        output = self.generator(prefill, mask)
        completed = output * mask + clean * (1.0 - mask)
        if train_d:
            loss_d = self._critic_loss(clean, completed.detach(), corners)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            out["critic"] = float(loss_d)
        if train_g:
            # L1 of the completed crop, per crop averaged over its hole (see the docstring).
            hole_error = ((completed - clean).abs() * mask).sum(dim=(1, 2, 3))
            l1 = (hole_error / (3.0 * mask.sum(dim=(1, 2, 3)))).mean()
            loss = c.alpha * l1
            if adversarial:
                fake_g = self.global_critic(completed)
                fake_l = self.local_critic(_patches(completed, corners, c.arch.local))
                adv_g = self.bce(fake_g, torch.ones_like(fake_g))
                adv_l = self.bce(fake_l, torch.ones_like(fake_l))
                loss = loss + c.beta * adv_g + c.gamma * adv_l
                out["adv_global"], out["adv_local"] = float(adv_g), float(adv_l)
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
            out["l1"] = float(l1.detach())
        return out


def _hole_psnr(generator: Reconstructor, batches) -> tuple[float, float]:
    """Mean hole PSNR (dB) of the network and of the Navier-Stokes pre-fill on fixed batches."""
    net, base = [], []
    with torch.inference_mode():
        for prefill, mask, clean, _ in batches:
            output = generator(prefill, mask)
            for o, p, m, c in zip(output, prefill, mask, clean):
                hole = m[0] > 0.5
                for values, target in ((o, net), (p, base)):
                    mse = float(((values - c)[:, hole] ** 2).mean())
                    target.append(10 * np.log10(1.0 / max(mse, 1e-10)))
    return float(np.mean(net)), float(np.mean(base))


def run(config: TrainConfig, data: Path, out: Path, seed: int, threads: int) -> dict:
    """Train, write the two weight files and the log into ``out``; returns the log."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    sampler = Sampler(_load_pool(train_split(data)), _training_masks(data), config, rng)
    validation = [Sampler(sampler.pool, sampler.masks, config,
                          np.random.default_rng([seed, 1, i])).batch() for i in range(8)]
    arch = config.arch
    trainer = Trainer(config, Reconstructor(arch.width),
                      Critic(GLOBAL_CRITIC_LAYERS, arch.crop, arch.width),
                      Critic(LOCAL_CRITIC_LAYERS, arch.local, arch.width))
    curve: list[dict] = []
    load_s = time.perf_counter() - started

    def phase(name: str, steps: int, trainer: Trainer, **flags) -> None:
        window: list[dict[str, float]] = []
        for index in range(1, steps + 1):
            window.append(trainer.step(sampler.batch(), **flags))
            if index % config.validate_every == 0 or index == steps:
                net, base = _hole_psnr(trainer.generator, validation)
                row = {"phase": name, "step": index,
                       "seconds": round(time.perf_counter() - started, 1),
                       **{k: round(float(np.mean([w[k] for w in window if k in w])), 5)
                          for k in window[-1]},
                       "val_hole_psnr": round(net, 3), "val_prefill_psnr": round(base, 3)}
                curve.append(row)
                window.clear()
                log.info("%s", json.dumps(row))

    phase("l1", config.steps_l1, trainer, train_g=True, adversarial=False, train_d=False)
    after_l1 = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    opt_after_l1 = copy.deepcopy(trainer.opt_g.state_dict())
    phase("critics", config.steps_critic, trainer, train_g=False, adversarial=False, train_d=True)
    phase("joint", config.steps_joint, trainer, train_g=True, adversarial=True, train_d=True)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"config": json.dumps(asdict(config)), "seed": str(seed)}
    save_reconstructor(trainer.generator, out / "inpaint_gan.safetensors",
                         {**meta, "variant": "adversarial"})
    # Ablation: the same phase-(1) network, continued with L1 alone for as many steps.
    ablation = replace(trainer, generator=Reconstructor(arch.width))
    ablation.generator.load_state_dict(after_l1)
    ablation.opt_g.load_state_dict(opt_after_l1)
    phase("l1_only", config.steps_joint, ablation, train_g=True, adversarial=False, train_d=False)
    save_reconstructor(ablation.generator, out / "inpaint_gan_l1.safetensors",
                         {**meta, "variant": "l1_only"})
    record = {"config": asdict(config), "seed": seed, "threads": threads,
              "load_seconds": round(load_s, 1),
              "total_seconds": round(time.perf_counter() - started, 1),
              "device": f"CPU ({platform.processor() or platform.machine()}), "
                        f"torch {torch.__version__}",
              "curve": curve}
    files.write_text(out / "inpaint_gan_train.json", json.dumps(record, indent=1))
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, required=True, help="folder for the weight files")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 was fastest on a busy 2-core machine)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    record = run(CONFIGS[args.config], args.data, args.out, args.seed, args.threads)
    log.info("done in %.0f s; wrote %s", record["total_seconds"], args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
