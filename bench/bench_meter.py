"""Wall time and peak memory of one call, on the CPU or on CUDA.

Peak memory is the peak of live torch tensor bytes during the call above what was live just
before it (the weights), so baseline and patched runs compare their activations:
  - CUDA: torch.cuda.max_memory_allocated after reset_peak_memory_stats, minus memory_allocated;
  - CPU: torch's CPU allocations are invisible to tracemalloc and the CPU allocator keeps no
    peak statistic, so one separate run per variant is recorded by torch.profiler with
    profile_memory=True; every allocation and free carries the allocator's running "Total
    Allocated", whose maximum is the peak. Deterministic, and the profiler's time overhead does
    not matter there because that run is not timed.
The timed CPU runs also report the process's resident-set high-water mark (VmHWM, reset through
/proc/self/clear_refs after a glibc malloc_trim; page-granular, no sampling gaps), what the
operating system sees, allocator caching and fragmentation included.
"""

import contextlib
import ctypes
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE")

CPU_METHOD = ("CPU: peak live torch tensor bytes above the bytes live before the call, from torch.profiler "
              "(profile_memory) 'Total Allocated' in one untimed run per variant; RSS x: the process's VmHWM "
              "(reset via /proc/self/clear_refs after malloc_trim) minus RSS before, in the timed runs")
CUDA_METHOD = "CUDA: torch.cuda.max_memory_allocated after reset_peak_memory_stats, minus memory_allocated before"


@dataclass
class Measurement:
    seconds: float
    cpu_seconds: float  # process CPU time, all threads
    rss_peak_bytes: int  # CPU: VmHWM - RSS before (0 where clear_refs is not writable); CUDA: as peak_bytes
    value: object = None  # what the call returned


@dataclass
class MemoryPeak:
    peak_bytes: int  # peak above the bytes live before the call
    total_peak_bytes: int  # peak of all live bytes, weights included


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def _hwm_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no VmHWM")


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


try:
    _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):  # not glibc: nothing to trim
    _malloc_trim = None


def measure(call: Callable[[], object], device: str) -> Measurement:
    """Run call() once: wall and CPU time, plus the RSS high-water mark on the CPU (costs nothing
    during the call: two writes to /proc around it)."""
    if device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    elif _malloc_trim is not None:
        _malloc_trim(0)
    rss_before = _rss_bytes() if device == "cpu" else 0
    hwm = device == "cpu" and _reset_hwm()
    start, cpu_start = time.perf_counter(), time.process_time()
    value = call()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    if device == "cuda":
        rss = torch.cuda.max_memory_allocated() - before
    else:
        rss = _hwm_bytes() - rss_before if hwm else 0
    return Measurement(seconds, cpu_seconds, rss, value)


# kineto prints these on every profiler start/stop on a machine without a GPU, and c10 warns once
# when a tensor allocated before the profiler started is freed during it (expected here)
_KINETO_NOISE = re.compile(r"^(USDT:.*profiler_(start|stop)|ERROR:.*gpuGetDeviceCount failed.*"
                           r"|\[W.*CPUAllocator.*allocated before the profiling started.*)$")


@contextlib.contextmanager
def _without_kineto_noise() -> Iterator[None]:
    """Send fd 2 to a file for the duration, then replay it to stderr minus kineto's start/stop lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines()
                    if not _KINETO_NOISE.match(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)


def memory_peak(call: Callable[[], object], device: str, resident_bytes: int = 0) -> tuple[MemoryPeak, object]:
    """Peak live tensor bytes of one call (see the module docstring); returns it and call()'s value.

    On the CPU the profiler counts only what is allocated while it runs, so the total with the
    weights is resident_bytes (the caller's count of what was live before: the weights) + peak.
    """
    if device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        value = call()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return MemoryPeak(peak - before, peak), value

    from torch.profiler import ProfilerActivity, profile

    with _without_kineto_noise(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        value = call()
    with tempfile.TemporaryDirectory() as folder:
        trace = os.path.join(folder, "trace.json")
        prof.export_chrome_trace(trace)
        with open(trace) as f:
            events = json.load(f)["traceEvents"]
    cpu = [e["args"] for e in events if e.get("name") == "[memory]" and e["args"].get("Device Type") == 0]
    if not cpu:
        return MemoryPeak(0, resident_bytes), value
    before = cpu[0]["Total Allocated"] - cpu[0]["Bytes"]  # the profiler's count just before the first event
    peak = max(args["Total Allocated"] for args in cpu) - before
    return MemoryPeak(peak, resident_bytes + peak), value
