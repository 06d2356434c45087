"""Running calls in several threads at once, for the tests that check stages share safely."""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

__all__ = ["at_once"]


def at_once(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run every call in its own thread, all released together by a barrier; returns each
    call's result, or the exception it raised, in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def job(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except BaseException as error:  # returned to the caller, which reports it
            results[index] = error

    threads = [threading.Thread(target=job, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
