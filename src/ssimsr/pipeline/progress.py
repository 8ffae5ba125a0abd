"""Progress lines with a rate and an ETA, on stderr, for the stages that loop over images.

``prepare``, ``evaluate`` and ``lpips`` print, like training does,

    prepare bsds300: 120/300 images, 2.1 img/s, eta 0:01:25

after the first item, then at most one line every ``every`` seconds, and a last line when
the loop is done. In the workflow stderr goes to the rule's log, so ``tail -f`` on a log
shows how far a job is. Nothing here decides an output (no code digest includes it).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` (the format of training's eta)."""
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Counts items of a loop of ``total`` and prints progress lines to ``stream`` (stderr).

    ``every``: seconds between lines (the first and the last item always print one);
    ``unit``: the plural noun of an item (``images``); ``short``: its rate unit (``img``).
    """

    def __init__(self, label: str, total: int, unit: str = "images", short: str = "img", every: float = 10.0,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.label, self.total, self.unit, self.short, self.every = label, int(total), unit, short, every
        self.stream, self.clock = stream, clock
        self.done = 0
        self.start = clock()
        self.last: float | None = None

    def line(self, now: float | None = None) -> str:
        elapsed = (self.clock() if now is None else now) - self.start
        rate = self.done / elapsed if elapsed > 0 else float("inf")
        text = f"{self.label}: {self.done}/{self.total} {self.unit}, "
        text += f"{rate:.2f} {self.short}/s" if rate < 10 else f"{rate:.1f} {self.short}/s"
        if self.done >= self.total:
            return text + f", done in {format_duration(elapsed)}"
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        return text + (f", eta {format_duration(eta)}" if eta != float("inf") else ", eta ?")

    def step(self, n: int = 1) -> None:
        """``n`` more items done; print a line when due."""
        self.done += n
        now = self.clock()
        if self.done >= self.total or self.last is None or now - self.last >= self.every:
            self.last = now
            print(self.line(now), file=self.stream or sys.stderr, flush=True)

    def wrap(self, items: Iterable[T]) -> Iterator[T]:
        """Yield ``items``, counting each one when the loop asks for the next (after its body)."""
        for item in items:
            yield item
            self.step()
