"""The study's progress lines: one numbered line per stage, durations written the way people read them."""

from __future__ import annotations

import threading
from collections.abc import Callable


def format_duration(seconds: float) -> str:
    """41s, 2m41s, 1h02m."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class StageLog:
    """Numbered progress lines: `[3/15] vgs+ en+fr: training done in 2m41s (200 steps)`, from any thread."""

    def __init__(self, total: int, write: Callable[[str], None]) -> None:
        self.total = total
        self.index = 0
        self.write = write
        self._lock = threading.Lock()

    def line(self, subject: str, message: str) -> None:
        with self._lock:
            self.index += 1
            self.write(f"[{self.index}/{self.total}] {subject}: {message}")
