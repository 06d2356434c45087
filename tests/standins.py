"""Stand-in weight files for the published models, made by code (never committed).

Random-initialised networks of the real architectures, saved in the published files' formats,
so the stages load them through their real paths. Random weights restore nothing: tests that
use them check plumbing and contracts, not quality.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any, Callable

__all__ = ["write_lama", "write_nafnet", "write_scratch", "write_ddcolor", "WRITERS",
           "StandinFiles"]


def _spandrel_arch(name: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import spandrel.architectures.LaMa as lama
        import spandrel.architectures.NAFNet as nafnet
    return {"LaMa": lama.LaMa, "NAFNet": nafnet.NAFNet}[name]


def write_lama(path: Path) -> Path:
    """A TorchScript trace of a random-initialised spandrel LaMa(in_nc=4), as big-lama.pt is
    (about 195 MB)."""
    import torch

    torch.manual_seed(0)
    model = _spandrel_arch("LaMa")(in_nc=4).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)),
                                 check_trace=False)
    traced.save(str(path))
    return path


def write_nafnet(path: Path) -> Path:
    """A narrow NAFNet state dict under "params", as NAFNet-GoPro-width64.pth holds."""
    import torch

    torch.manual_seed(0)
    model = _spandrel_arch("NAFNet")(img_channel=3, width=8, middle_blk_num=1,
                                     enc_blk_nums=[1, 1, 1, 1], dec_blk_nums=[1, 1, 1, 1])
    torch.save({"params": model.state_dict()}, path)
    return path


def write_scratch(path: Path) -> Path:
    """A narrow BOPBTL U-Net under "model_state", as FT_Epoch_latest.pt holds."""
    import torch

    from restorer.nets.bopbtl_unet import ScratchUNet

    torch.manual_seed(0)
    torch.save({"model_state": ScratchUNet(wf=3, depth=4).state_dict(), "epoch": 7}, path)
    return path


def write_ddcolor(path: Path) -> Path:
    """A random-initialised DDColor-T saved as the published checkpoints are ({"params": ...};
    about 220 MB)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from spandrel_extra_arches.architectures.DDColor import DDColor
    torch.manual_seed(0)
    model = DDColor(encoder_name="convnext-t", decoder_name="MultiScaleColorDecoder",
                    input_size=(512, 512), num_output_channels=2, last_norm="Spectral",
                    num_queries=100, num_scales=3, dec_layers=9, nf=512)
    torch.save({"params": model.state_dict()}, path)
    return path


#: Manifest weight id -> (file name, writer) of the stand-ins above.
WRITERS: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "big_lama": ("big-lama.pt", write_lama),
    "nafnet_gopro_w64": ("NAFNet-GoPro-width64.pth", write_nafnet),
    "bopbtl_scratch": ("FT_Epoch_latest.pt", write_scratch),
    "ddcolor_paper_tiny": ("ddcolor_paper_tiny.pth", write_ddcolor),
}


class StandinFiles:
    """Stand-in files in ``folder`` by manifest weight id, each written once, on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._files: dict[str, Path] = {}
        self._lock = threading.Lock()

    def __contains__(self, weight_id: str) -> bool:
        return weight_id in WRITERS

    def path(self, weight_id: str) -> Path:
        """The stand-in file of ``weight_id`` (KeyError when there is no writer for it)."""
        with self._lock:
            if weight_id not in self._files:
                name, write = WRITERS[weight_id]
                self._files[weight_id] = write(self.folder / name)
            return self._files[weight_id]
