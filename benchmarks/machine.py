"""The machine record every report carries, and the warnings that make numbers suspect.

CPU model, cores, frequency governor, OS, Python and runtime versions, a UTC timestamp and
how busy the machine was; on a Raspberry Pi also the board model, SoC temperature and the
decoded ``vcgencmd get_throttled`` flags. Versions are read from package metadata, so
nothing heavy is imported here.

Example:
    >>> rec = machine_record(busy_sample_s=0.0)
    >>> rec["cores"] >= 1 and "python" in rec
    True
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from core.versions import package_versions

PACKAGES = ("numpy", "ai-edge-litert", "tflite-runtime", "onnxruntime", "tensorflow",
            "tensorflow-cpu", "keras", "opencv-python-headless", "onnx")
THROTTLE_BITS = {0: "under-voltage now", 1: "ARM frequency capped now", 2: "throttled now",
                 3: "soft temperature limit now", 16: "under-voltage occurred",
                 17: "ARM frequency capping occurred", 18: "throttling occurred",
                 19: "soft temperature limit occurred"}
BUSY_CPU_PERCENT = 20.0  # other load above this while idle-sampling makes numbers noisy
BUSY_LOAD_PER_CORE = 0.75


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip().strip("\x00")
    except OSError:
        return None


def cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Model", "cpu model"):
        for line in text.splitlines():
            if line.lower().startswith(key.lower()) and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def governor() -> str | None:
    """cpu0's cpufreq governor, ``None`` where the kernel exposes none (VMs, containers)."""
    return _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")


def os_name() -> str:
    for line in (_read("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"') + f" ({platform.release()})"
    return platform.platform()


def versions() -> dict[str, str]:
    return package_versions(PACKAGES)


def pi_model() -> str | None:
    """Board model string on a Raspberry Pi (``/proc/device-tree/model``), else ``None``."""
    model = _read("/proc/device-tree/model")
    return model if model and "raspberry pi" in model.lower() else None


def decode_throttled(value: int) -> list[str]:
    """Names of the set bits of ``vcgencmd get_throttled`` (``0x50000`` -> two flags)."""
    return [name for bit, name in THROTTLE_BITS.items() if value >> bit & 1]


def pi_status() -> dict[str, object]:
    temp = _read("/sys/class/thermal/thermal_zone0/temp")
    out: dict[str, object] = {"soc_temp_c": round(int(temp) / 1000, 1) if temp and
                              temp.isdigit() else None}
    if shutil.which("vcgencmd"):
        try:
            text = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True,
                                  text=True, timeout=5).stdout.strip()
            value = int(text.split("=", 1)[1], 16)
            out.update(throttled=hex(value), throttled_flags=decode_throttled(value))
        except (OSError, ValueError, IndexError, subprocess.SubprocessError):
            out["throttled"] = "unreadable"
    return out


def busy(sample_s: float = 0.5, load: bool = True) -> dict[str, float | None]:
    """CPU use by everything over ``sample_s`` seconds and the 1-minute load average.

    After a run, pass ``load=False``: the load average then mostly shows the run itself.
    """
    pct = None
    if sample_s > 0:
        try:
            import psutil

            pct = float(psutil.cpu_percent(interval=sample_s))
        except ImportError:
            pass
    avg = os.getloadavg()[0] if load and hasattr(os, "getloadavg") else None
    return {"cpu_percent": pct, "load1": round(avg, 2) if avg is not None else None}


def machine_class() -> str:
    """Key of the committed reference results for this kind of machine, e.g. ``x86_64-2core``."""
    pi = pi_model()
    if pi:  # "Raspberry Pi 4 Model B Rev 1.4" -> "rpi-4-model-b"
        words = pi.lower().replace("raspberry pi", "").split()
        return "-".join(["rpi"] + (words[:words.index("rev")] if "rev" in words else words))
    return f"{platform.machine().lower()}-{os.cpu_count() or 1}core"


def machine_record(busy_sample_s: float = 0.5) -> dict[str, object]:
    """Everything a reader needs to judge where the numbers came from."""
    cores = os.cpu_count() or 1
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    rec: dict[str, object] = {
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(), "arch": platform.machine(),
        "cores": cores, "physical_cores": physical, "governor": governor(), "os": os_name(),
        "python": platform.python_version(), "executable": sys.executable,
        "versions": versions(), "machine_class": machine_class(),
        "busy_before": busy(busy_sample_s), "pi": None,
    }
    if pi_model():
        rec["pi"] = {"model": pi_model(), **pi_status()}
    return rec


def warnings_for(rec: dict[str, object]) -> list[str]:
    """Human warnings: governor not ``performance``, a busy machine, Pi throttling."""
    out = []
    gov = rec.get("governor")
    if gov is None:
        out.append("CPU frequency governor unknown (no cpufreq in this VM/container); "
                   "clock scaling may add noise")
    elif gov != "performance":
        out.append(f"CPU governor is '{gov}', not 'performance': expect noisier, slower numbers "
                   "(sudo cpupower frequency-set -g performance)")
    cores = int(rec.get("cores") or 1)
    for when in ("busy_before", "busy_after"):
        b = rec.get(when) or {}
        pct, load = b.get("cpu_percent"), b.get("load1")
        if (pct is not None and pct >= BUSY_CPU_PERCENT) or \
                (load is not None and load > BUSY_LOAD_PER_CORE * cores):
            what = ", ".join(x for x in (pct is not None and f"CPU {pct:.0f}% in use",
                                         load is not None and f"load average {load}") if x)
            out.append(f"machine busy {when.split('_')[1]} the run ({what} on {cores} cores): "
                       "other work skews latency")
    pi = rec.get("pi") or {}
    if pi.get("throttled_flags"):
        out.append("Raspberry Pi throttling: " + ", ".join(pi["throttled_flags"]))
    if pi.get("soc_temp_c") and pi["soc_temp_c"] >= 80:
        out.append(f"SoC at {pi['soc_temp_c']} C: thermal throttling likely (add a heatsink/fan)")
    return out
