"""Progress of long commands (reindex, export/import, repair, migration): a bar on a terminal only.

A progress bar redrawn into a log file or a pipe is noise; there the same loop writes one line
with the count when it ends.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from tqdm import tqdm


class _Count:
    """What the loop sees off a terminal: ``update`` counts, nothing is drawn."""

    def __init__(self) -> None:
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
        """Details belong to the bar; the final count line does without them."""


@contextmanager
def progress(
    *, total: int | None = None, desc: str = "", unit: str = "it", enabled: bool = True, file: IO[str] | None = None
) -> Iterator[Any]:
    """A tqdm bar when ``enabled`` and ``file`` (stderr by default) is a terminal; else a counter
    that writes ``desc: N unit(s)`` once at the end (nothing when not ``enabled``)."""
    stream = file or sys.stderr
    if enabled and stream.isatty():
        with tqdm(total=total, desc=desc, unit=unit, file=stream) as bar:
            yield bar
        return
    counter = _Count()
    yield counter
    if enabled:
        stream.write(f"{desc + ': ' if desc else ''}{counter.n} {unit}{'' if counter.n == 1 else 's'}\n")
        stream.flush()
