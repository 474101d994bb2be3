"""`run_in_slot`: work in a spawned process of a slot's: its value or its error comes back, a dead child is a
named error, and a stopped slot stops its child."""

from __future__ import annotations

import functools
import os
import signal
import threading
import time

import pytest

from vgssl.study.slot_process import SlotProcessError, run_in_slot
from vgssl.study.training import Slot


def _environment_seen(name: str) -> tuple[str | None, int, int]:
    import torch

    return os.environ.get(name), torch.get_num_threads(), os.getpid()


def _fails() -> None:
    raise ValueError("item file x.item, line 3: no such utterance")


def _dies() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _sleeps(pid_file: str) -> None:
    with open(pid_file, "w") as file:
        file.write(str(os.getpid()))
    time.sleep(60)


def test_the_work_runs_in_another_process_with_the_slots_environment():
    slot = Slot(0, {"OMP_NUM_THREADS": "1", "VGSSL_SLOT_TEST": "slot 0"})
    value, threads, pid = run_in_slot(functools.partial(_environment_seen, "VGSSL_SLOT_TEST"), slot)
    assert (value, threads) == ("slot 0", 1)
    assert pid != os.getpid() and "VGSSL_SLOT_TEST" not in os.environ


def test_an_error_in_the_child_comes_back_with_its_traceback():
    with pytest.raises(SlotProcessError, match=r"ValueError: item file x.item, line 3") as caught:
        run_in_slot(_fails, Slot(0, {}))
    assert caught.value.child_traceback is not None and "_fails" in caught.value.child_traceback


def test_a_killed_child_is_a_named_error():
    with pytest.raises(SlotProcessError, match=r"exit code -9\) without a result"):
        run_in_slot(_dies, Slot(0, {}))


def test_stopping_the_slot_stops_the_child(tmp_path):
    slot = Slot(0, {})
    pid_file = tmp_path / "pid"

    def stop_once_started() -> None:
        while not pid_file.is_file() or not pid_file.read_text():
            time.sleep(0.05)
        slot.stop.set()

    threading.Thread(target=stop_once_started, daemon=True).start()
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        run_in_slot(functools.partial(_sleeps, str(pid_file)), slot)
    assert time.perf_counter() - started < 30
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)  # joined, so not even a zombie is left
