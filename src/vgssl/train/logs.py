"""Where a run's log lines go: rank 0 to stderr and the run directory's `train.log`, other ranks' warnings
to stderr with their rank; written through tqdm, so a line never tears the progress bar."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from vgssl.train.distributed import DistributedContext

LOGGER = logging.getLogger("vgssl.train")
LOG_FILE = "train.log"


@contextlib.contextmanager
def log_to_run_dir(run_dir: Path, context: DistributedContext) -> Iterator[None]:
    """Rank 0 logs INFO to stderr and `train.log`; other ranks log warnings to stderr, prefixed by rank."""
    prefix = f"[rank {context.rank}] " if context.is_distributed else ""
    formatter = logging.Formatter(f"%(asctime)s {prefix}%(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    console = TqdmAwareHandler()
    console.setLevel(logging.INFO if context.is_main else logging.WARNING)
    handlers: list[logging.Handler] = [console]
    if context.is_main:
        handlers.append(logging.FileHandler(run_dir / LOG_FILE, encoding="utf-8"))
    previous_level, previous_propagate = LOGGER.level, LOGGER.propagate
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
    for handler in handlers:
        handler.setFormatter(formatter)
        LOGGER.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            LOGGER.removeHandler(handler)
            handler.close()
        LOGGER.setLevel(previous_level)
        LOGGER.propagate = previous_propagate


class TqdmAwareHandler(logging.Handler):
    """Writes to stderr through tqdm, so log lines do not tear the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging's contract: report, never raise from a handler
            self.handleError(record)
