"""One writer per directory: a second trainer or study on the same directory fails at once, naming the
first one's PID; the lock dies with its holder, even on SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vgssl.cli import main
from vgssl.locks import LOCK_FILE, DirectoryLockedError, exclusive_lock

REPO = Path(__file__).resolve().parents[2]


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    with exclusive_lock(tmp_path, job="trainer"):
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
        refused = pytest.raises(DirectoryLockedError, match=rf"another trainer \(PID {os.getpid()}\)")
        with refused, exclusive_lock(tmp_path, job="trainer"):
            pass
    with exclusive_lock(tmp_path, job="trainer"):  # released at the end of the block
        pass


def test_the_lock_dies_with_a_killed_holder(tmp_path: Path) -> None:
    script = (
        "import sys, time\nfrom pathlib import Path\nfrom vgssl.locks import exclusive_lock\n"
        "with exclusive_lock(Path(sys.argv[1]), job='trainer'):\n"
        "    print('held', flush=True)\n    time.sleep(60)"
    )
    environment = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=environment
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(DirectoryLockedError, match=rf"PID {holder.pid}"),
            exclusive_lock(tmp_path, job="t"),
        ):
            pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
    deadline = time.monotonic() + 5
    while True:
        try:
            with exclusive_lock(tmp_path, job="trainer"):
                break
        except DirectoryLockedError:
            assert time.monotonic() < deadline, "the lock outlived its SIGKILLed holder"
            time.sleep(0.05)


def test_a_second_study_on_one_out_fails_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    with exclusive_lock(out, job="study"):
        status = main(["study", str(REPO / "configs" / "tiny.yaml"), "--out", str(out), "--no-progress"])
    assert status == 2
    assert f"another study (PID {os.getpid()})" in capsys.readouterr().err
    assert sorted(path.name for path in out.iterdir()) == [LOCK_FILE]  # no corpus, no run started


def test_a_child_of_the_study_dies_with_it_even_on_sigkill(tmp_path: Path) -> None:
    # A stand-in for `vgssl study`: starts a long child the way the study starts its trainers, reports its
    # PID, then waits; SIGKILL gives it no chance to stop the child itself.
    script = (
        "import os, subprocess, sys, time\nfrom vgssl.study.training import die_with_parent\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " preexec_fn=die_with_parent(os.getpid()))\nprint(child.pid, flush=True)\ntime.sleep(60)"
    )
    environment = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=environment
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    os.kill(child, 0)  # alive
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and _state(child) != "Z":
        assert time.monotonic() < deadline, "the child outlived its SIGKILLed parent"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"
