"""Restoring an archive: ``python -m restorer batch SRC DEST`` on Ray.

``sources`` lists the photos and their output paths, ``ledger`` records one row per photo as
results land (the run's memory across crashes), ``worker`` is the Ray actor that holds a
loaded pipeline, ``driver`` streams photos through a pool of workers, ``progress`` shows the
run (bar, summary table, run summary file), ``command`` is the subcommand. Ray is imported only
inside ``driver`` and ``worker`` functions, so ``import restorer.archive`` stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []
