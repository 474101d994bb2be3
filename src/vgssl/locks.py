"""One writer per directory: an exclusive, advisory lock on a file inside it, held while a job runs.

`flock` locks die with their process (also on SIGKILL), so a crashed trainer never leaves a stale lock; the
file keeps the PID of the last holder, which is what a refused second job names.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from vgssl.errors import VgsslError

LOCK_FILE = ".vgssl.lock"


class DirectoryLockedError(VgsslError):
    """Another vgssl process is writing into the same directory."""


@contextlib.contextmanager
def exclusive_lock(directory: Path, *, job: str) -> Iterator[None]:
    """Hold `directory`'s lock for the block (making the directory if needed), or raise at once if another
    process holds it. `job` names what holds it ("trainer", "study") in the message."""
    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 (held across the yield)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise DirectoryLockedError(
                f"{directory} is in use by another {job} (PID {holder}); two {job}s writing into one "
                f"directory would overwrite each other's files. Wait for it to finish or stop it (kill "
                f"{holder}), or use another directory"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()
