"""How a network's calls ran (device, precision, tiles, notes), for a stage's report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

__all__ = ["RunInfo", "merge_runs", "record_of"]


@dataclass(frozen=True)
class RunInfo:
    """How one call ran: device, precision, tiles (count and side, None: one piece), notes."""

    device: str
    precision: str
    tiles: int
    tile: int | None
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for a stage's info and the report."""
        return {"device": self.device, "precision": self.precision, "tiles": self.tiles,
                "tile": self.tile, "notes": list(self.notes)}


def merge_runs(runs: Sequence[RunInfo]) -> RunInfo | None:
    """One RunInfo for several calls of a stage (e.g. one per window or face): the last call's
    device and precision, the tiles summed, the largest tile side, every distinct note."""
    if not runs:
        return None
    notes = tuple(dict.fromkeys(note for run in runs for note in run.notes))
    sides = [run.tile for run in runs if run.tile is not None]
    return RunInfo(runs[-1].device, runs[-1].precision, sum(run.tiles for run in runs),
                   max(sides) if sides else None, notes)


def record_of(info: Mapping[str, Any]) -> dict[str, Any] | None:
    """How a learned stage's networks ran, from its StageOutput ``info``: the own stages'
    ``runtime`` record, the published stages' flat fields; None for other stages."""
    if isinstance(info.get("runtime"), Mapping):
        return dict(info["runtime"])
    keys = ("device", "precision", "tiles", "tile", "notes")
    return {k: info[k] for k in keys} if all(k in info for k in keys) else None

