"""What a figure was measured on: the line recipes and benchmarks print as their machine."""
from __future__ import annotations

import os
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def describe(cpuinfo: Path = CPUINFO) -> str:
    """``"x86_64, 2 cores, AMD EPYC, AVX-512"``: architecture, core count, and on Linux the CPU's
    model name and whether it has AVX-512. The same training command gives other weights on
    another kind of CPU (its kernels round differently), so results name the CPU they came from.

    Read here from /proc/cpuinfo: py-cpuinfo would give the same in about a second of probing
    per call, for two lines of a file the kernel already writes.
    """
    parts = [platform.machine() or "unknown architecture", f"{os.cpu_count()} cores"]
    try:
        lines = cpuinfo.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    fields = {}
    for line in lines:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name") or platform.processor()
    if model:
        parts.append(model)
    if "avx512f" in fields.get("flags", "").split():
        parts.append("AVX-512")
    return ", ".join(parts)
