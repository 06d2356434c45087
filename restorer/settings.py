"""One :class:`Settings` value per process: where weights live, the network, the device, limits.

Each edge (the ``restore`` / ``batch`` / ``weights`` commands, the app's start-up) builds it
once with :func:`build_settings` from its parsed flags and the environment, and passes it down;
below the edges restorer never reads the environment. Precedence: a flag given on the command
line, then the environment variable, then the default.

=====================  =========================================  ==============================
setting                environment                                default
=====================  =========================================  ==============================
``cache_dir``          ``HF_HUB_CACHE``, ``HF_HOME``/hub,         ``~/.cache/huggingface/hub``
                       ``XDG_CACHE_HOME``/huggingface/hub
``offline``            ``HF_HUB_OFFLINE`` (1/true/yes/on)         off
``device``             ``RESTORER_DEVICE``                        auto
``precision``          ``RESTORER_PRECISION``                     auto
``threads``            ``RESTORER_THREADS``                       the libraries' own
``endpoint``           ``HF_ENDPOINT``                            the Hugging Face Hub
=====================  =========================================  ==============================

``cache_dir`` is the one Hugging Face cache folder that ``weights pull`` fills and ``restore``
reads. This module imports nothing heavy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from restorer.errors import RestorerError

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_TIME_BUDGET", "DEVICE_ENV", "PRECISION_ENV", "PRECISIONS",
           "THREADS_ENV", "Settings", "build_settings", "default_cache_dir",
           "default_manifest_path", "is_truthy"]

DEVICE_ENV = "RESTORER_DEVICE"
"""Environment variable naming where torch stages run (``Settings.device``)."""
PRECISION_ENV = "RESTORER_PRECISION"
"""Environment variable naming the precision of the learned stages (``Settings.precision``)."""
THREADS_ENV = "RESTORER_THREADS"
"""Environment variable naming how many CPU threads torch may use (``Settings.threads``)."""
OFFLINE_ENV = "HF_HUB_OFFLINE"
DEFAULT_TIME_BUDGET = 20.0
"""Seconds Auto's published learned stages may take per photo by default."""
DEFAULT_MAX_PIXELS = 64_000_000
"""Largest photo accepted by default (width x height)."""

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


PRECISIONS = ("auto", "fp32", "fp16", "bf16")
"""What a precision choice may be ("auto": the fastest the model declares safe on the device)."""


def is_truthy(value: str, name: str) -> bool:
    """The one rule for a yes/no environment value: 1/true/yes/on (any case) is on;
    0/false/no/off or empty is off; anything else is refused naming the variable ``name``."""
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise RestorerError(f"{name}={value!r} is neither on (1, true, yes, on) nor off "
                        "(0, false, no, off)")


def default_manifest_path() -> Path:
    """``weights/manifest.json`` at the root of the restorer source tree."""
    return Path(__file__).resolve().parent.parent / "weights" / "manifest.json"


def default_cache_dir(env: Mapping[str, str]) -> Path:
    """The Hugging Face cache folder the Hub client would use under environment ``env``:
    ``HF_HUB_CACHE``, else ``HF_HOME``/hub, else ``XDG_CACHE_HOME``/huggingface/hub, else
    ``~/.cache/huggingface/hub``."""
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    xdg = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else home / ".cache"
    return xdg / "huggingface" / "hub"


@dataclass(frozen=True)
class Settings:
    """Everything the library needs from the edge, resolved once (see the module's table).

    ``weights_dir`` (bundled files) defaults to the manifest's folder; ``cache_dir`` None means
    the Hub client's default folder (:func:`build_settings` always names it); ``state_dir``
    (the verified-stamp file) defaults to ``cache_dir``; ``time_budget`` None: no budget.
    """

    manifest: Path = field(default_factory=default_manifest_path)
    weights_dir: Path | None = None
    cache_dir: Path | None = None
    state_dir: Path | None = None
    offline: bool = False
    endpoint: str | None = None
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    time_budget: float | None = DEFAULT_TIME_BUDGET
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        from restorer.backends import DEVICE_HELP, check_device_choice

        try:
            check_device_choice(self.device)
        except RestorerError:
            raise RestorerError(f"unknown device '{self.device}' (from --device or {DEVICE_ENV}): "
                                f"use {DEVICE_HELP}") from None
        if self.precision not in PRECISIONS:
            raise RestorerError(f"unknown precision '{self.precision}' (from --precision or "
                                f"{PRECISION_ENV}): use {', '.join(PRECISIONS)}")
        if self.precision in ("fp16", "bf16") and self.device.strip().lower() == "cpu":
            raise RestorerError(f"--precision {self.precision} needs a CUDA GPU, and --device "
                                "is cpu; use --precision fp32 or auto")
        if self.time_budget is not None and not self.time_budget >= 0:
            raise RestorerError(f"the time budget must be 0 or more seconds, not "
                                f"{self.time_budget} (--time-budget)")
        if isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int) \
                or self.max_pixels <= 0:
            raise RestorerError("--max-pixels must be a positive number of pixels")
        if self.threads is not None and (isinstance(self.threads, bool)
                                         or not isinstance(self.threads, int) or self.threads <= 0):
            raise RestorerError(f"the number of threads must be a positive whole number, not "
                                f"{self.threads!r} (--threads or {THREADS_ENV})")

    @property
    def bundled_dir(self) -> Path:
        """The folder of bundled weight files: ``weights_dir``, else the manifest's folder."""
        return self.weights_dir if self.weights_dir is not None else self.manifest.parent


def build_settings(flags: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """The settings of an edge's parsed ``flags`` (by name; absent or None: not given) and its
    environment ``env`` (the process environment, passed in by the edge; nothing else is read).

    Flags read: ``manifest``, ``weights_dir``, ``cache_dir``, ``state_dir``, ``offline``,
    ``endpoint``, ``device``, ``precision``, ``threads``, ``time_budget`` (inf: no budget) and
    ``max_pixels``. Raises RestorerError naming the flag or variable that is wrong.
    """

    def given(name: str) -> Any:
        return flags.get(name)

    def from_env(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    offline = given("offline")
    if offline is None:
        offline = is_truthy(env.get(OFFLINE_ENV, ""), OFFLINE_ENV)
    threads = given("threads")
    if threads is None and from_env(THREADS_ENV) is not None:
        try:
            threads = int(from_env(THREADS_ENV) or "")
        except ValueError:
            raise RestorerError(f"{THREADS_ENV}={env[THREADS_ENV]!r} is not a whole number") from None
    budget = given("time_budget")
    if budget is None:
        budget = DEFAULT_TIME_BUDGET
    values: dict[str, Any] = {
        "weights_dir": given("weights_dir"),
        "cache_dir": given("cache_dir") or default_cache_dir(env),
        "state_dir": given("state_dir"),
        "offline": bool(offline),
        "endpoint": given("endpoint") or from_env("HF_ENDPOINT"),
        "device": given("device") or from_env(DEVICE_ENV) or "auto",
        "precision": given("precision") or from_env(PRECISION_ENV) or "auto",
        "threads": threads,
        "time_budget": None if math.isinf(budget) and budget > 0 else budget,
    }
    if given("manifest") is not None:
        values["manifest"] = given("manifest")
    if given("max_pixels") is not None:
        values["max_pixels"] = given("max_pixels")
    return Settings(**values)
