"""The machine a benchmark ran on: CPU model, cores, threads, library versions, date and command line."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:      # not Linux
        return os.cpu_count() or 1


def machine_info(dtype: str, device: str, argv: list[str]) -> dict:
    import torch
    import transformers
    gpu = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None
    return {
        "cpu": cpu_model(), "cores": usable_cores(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "transformers": transformers.__version__, "dtype": dtype, "device": device, "gpu": gpu,
        "python": platform.python_version(), "platform": platform.platform(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(["specdec", *argv]),
    }


def machine_line(info: dict) -> str:
    """One line for reports: 'CPU, N cores, T torch threads, torch X, transformers Y, float32 on cpu'."""
    where = info["gpu"] or info["cpu"]
    return (f"{where}, {info['cores']} cores, {info['torch_threads']} torch threads, torch {info['torch']}, "
            f"transformers {info['transformers']}, {info['dtype']} on {info['device']}, python {info['python']}, "
            f"{info['date']}")
