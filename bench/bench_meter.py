"""Wall time and peak memory of one call, on the CPU or on CUDA.

CPU peak memory: torch's CPU allocations are invisible to tracemalloc, so the kernel's own
high-water mark of the process's resident set is used instead. Before each call, freed heap
memory is handed back to the OS (glibc malloc_trim) and the high-water mark is reset (writing 5
to /proc/self/clear_refs); after it, VmHWM - VmRSS(before) is the call's peak extra memory, at
page granularity and without sampling gaps. Where clear_refs is not writable, a 1 ms RSS
sampling thread stands in (it can miss peaks shorter than a millisecond).

CUDA peak memory: torch.cuda.max_memory_allocated after reset_peak_memory_stats, minus the
memory allocated before the call (the weights).
"""

import ctypes
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

_PAGE = 4096


@dataclass
class Measurement:
    seconds: float
    cpu_seconds: float  # process CPU time (all threads): steadier than wall time when other work shares the cores
    peak_bytes: int  # the call's peak memory above what was allocated just before it
    total_peak_bytes: int  # the process's (CPU) or the device's (CUDA) peak during the call, weights included


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


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


class _RssSampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak = _rss_bytes()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.001):
            self.peak = max(self.peak, _rss_bytes())

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return max(self.peak, _rss_bytes())


def cpu_memory_method() -> str:
    if _reset_hwm():
        return "CPU: kernel peak RSS (VmHWM reset via /proc/self/clear_refs, after malloc_trim) minus RSS before the call"
    return "CPU: 1 ms RSS sampling thread, peak minus RSS before the call (may miss sub-ms peaks)"


def measure(call: Callable[[], object], device: str, memory: bool = True) -> Measurement:
    """Run call() once; time it and, when memory is True, its peak memory.

    With clear_refs the memory costs two syscalls and a malloc_trim around the call, nothing
    during it; only the sampling fallback runs a thread beside the call.
    """
    if device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        start, cpu_start = time.perf_counter(), time.process_time()
        call()
        torch.cuda.synchronize()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        peak = torch.cuda.max_memory_allocated()
        return Measurement(seconds, cpu_seconds, peak - before, peak)

    if not memory:
        start, cpu_start = time.perf_counter(), time.process_time()
        call()
        return Measurement(time.perf_counter() - start, time.process_time() - cpu_start, 0, 0)
    if _malloc_trim is not None:
        _malloc_trim(0)
    before = _rss_bytes()
    sampler = None if _reset_hwm() else _RssSampler()
    if sampler is not None:
        sampler.start()
    start, cpu_start = time.perf_counter(), time.process_time()
    call()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = sampler.stop() if sampler is not None else _status_kib("VmHWM") * 1024
    return Measurement(seconds, cpu_seconds, peak - before, peak)
