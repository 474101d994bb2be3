"""What the study's numbers were computed with: versions, the vgssl commit, the CPU and GPUs, the threads.

Floating-point results depend on all of these (the order of a sum changes with the thread count, a kernel
with the CPU's instruction set), so the report records them next to the numbers and says what
reproducibility to expect (`REPRODUCIBILITY`).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from vgssl import __version__

# CPU features that change which kernels torch runs (bf16 autocast is native only with the last two).
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
PACKAGES = ("torch", "numpy", "fastabx", "transformers")

REPRODUCIBILITY = (
    "A rerun on the same machine with the same study config, seeds, software versions and thread count "
    "gives bit-identical weights and results (measured on CPU in fp32 and bf16, also across days and between "
    "`vgssl study` and a benchmark training the same config; `benchmarks/reproducibility.py` checks it on "
    "your machine). Another thread count (`launch.parallel_runs` changes it), CPU, GPU or torch/vgssl "
    "version changes the order of floating-point operations and so the numbers (measured: 1 instead of 2 "
    "threads moved phone ABX by 0.11 points after 100 steps; one model moved 1.6 points between two "
    "machines), by up to about the between-seed spread: seeds, not reruns, measure the noise of a result. "
    "On CUDA, set `train.deterministic: true` for deterministic kernels (slower)."
)


def describe_environment() -> dict[str, Any]:
    """Versions, commit, CPU model and flags, cores, torch threads and visible GPUs of this process."""
    import torch

    versions = {"python": platform.python_version(), "vgssl": __version__}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available()
        else []
    )
    return {
        "versions": versions,
        "vgssl_commit": vgssl_commit(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_flags": [flag for flag in CPU_FLAGS if flag in _cpu_flags()],
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpus": gpus,
        "executable": sys.executable,
    }


def vgssl_commit() -> str | None:
    """The git commit of the vgssl source tree this runs from ("+dirty" with local changes); None when vgssl
    is installed from a wheel or git is missing."""
    source = Path(__file__).resolve().parents[3]
    if not (source / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        status = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return commit.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _cpu_model() -> str:
    for line in _cpuinfo():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def _cpu_flags() -> set[str]:
    for line in _cpuinfo():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()
