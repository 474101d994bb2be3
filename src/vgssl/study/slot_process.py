"""Running part of the study (a model's evaluation) in a process of its own, inside a slot's environment.

With `launch.parallel_runs` > 1 each slot trains one run at a time in a child `vgssl train`; the run's
evaluation then goes into the same slot, beside the other slots' training, instead of waiting until every
run is trained (on 2 cores that serial tail was 6 of the demo's minutes, at the efficiency of one
two-thread process). Evaluation is Python code, not a command, so the child is a spawned interpreter: it
takes the slot's environment (threads, visible GPUs) before its first torch operation, asks the kernel to
stop it when the study dies, and sends back the work's return value or the error it raised.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Callable
from typing import Any

from vgssl.errors import VgsslError
from vgssl.study.training import POLL_SECONDS, Slot, die_with_parent


class SlotProcessError(VgsslError):
    """The work failed in its child process (message: the child's exception) or the child died."""

    def __init__(self, message: str, child_traceback: str | None = None) -> None:
        super().__init__(message)
        self.child_traceback = child_traceback


def run_in_slot[T](work: Callable[[], T], slot: Slot) -> T:
    """`work()` in a spawned process with `slot.environment`; its result, or SlotProcessError.

    `work` must pickle (a module-level function, or a functools.partial of one with picklable arguments).
    Setting `slot.stop` (the study was interrupted in another thread) stops the child and raises
    KeyboardInterrupt here, as an interrupted trainer does.
    """
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(
        target=_child, args=(work, slot.environment, os.getpid(), send), name=f"vgssl-slot{slot.index}"
    )
    process.start()
    send.close()  # the child holds the only writer, so its death reads as end of file
    received = False
    try:
        while not receive.poll(POLL_SECONDS):
            if slot.stop.is_set():
                raise KeyboardInterrupt
        try:
            outcome, value, child_traceback = receive.recv()
            received = True
        except EOFError:
            process.join()
            raise SlotProcessError(
                f"the evaluation process ended (exit code {process.exitcode}) without a result: killed for "
                "memory, or by a signal"
            ) from None
    finally:
        if not received and process.is_alive():  # interrupted: do not leave the child running
            process.terminate()
        process.join()
        receive.close()
    if outcome == "interrupted":
        raise KeyboardInterrupt
    if outcome == "error":
        raise SlotProcessError(value, child_traceback)
    return value


def _child(work: Callable[[], Any], environment: dict[str, str], parent: int, send: Any) -> None:
    arm = die_with_parent(parent)
    if arm is not None:
        arm()
    os.environ.update(environment)
    if "OMP_NUM_THREADS" in environment:  # torch may be imported already, by unpickling `work`
        import torch

        torch.set_num_threads(int(environment["OMP_NUM_THREADS"]))
    try:
        send.send(("value", work(), None))
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the study is interrupted
        send.send(("interrupted", None, None))
    except BaseException as error:  # everything goes back to the study, which records it
        send.send(("error", f"{type(error).__name__}: {error}", traceback.format_exc()))
    finally:
        send.close()
