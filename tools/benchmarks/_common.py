"""Shared helpers of the benchmark subcommands: timing, peak memory, isolation, tables.

Peak memory
-----------
* GPU: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``,
  minus what was allocated before the measured calls (tensors only, as the
  caching allocator reports them).
* CPU: the process's resident set size (``/proc/self/statm``) sampled every
  millisecond by a background thread while the measured calls run (PyTorch
  kernels release the GIL, so the sampler keeps running); reported as the
  peak minus the RSS just before the calls. A spike shorter than the sampling
  interval can be missed, and allocator caches of earlier work in the same
  process distort it, which is why each measurement runs in a fresh
  sub-process by default (:func:`run_isolated`). ``ru_maxrss`` (lifetime
  peak, model construction included) is reported as a cross-check.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

MB = 2 ** 20


def rss_bytes() -> int:
    """Current resident set size of this process."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError, IndexError):  # not Linux: fall back to the lifetime peak
        return max_rss_bytes()


def max_rss_bytes() -> int:
    """Lifetime peak RSS (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == 'darwin' else peak * 1024


def release_free_memory() -> None:
    """Hand memory freed earlier (e.g. the text tower of a CLIP build) back to the OS.

    glibc keeps small freed blocks in its heap, where they would silently
    serve the measured code and hide part of its peak.
    """
    gc.collect()
    if sys.platform.startswith('linux'):
        try:
            import ctypes
            ctypes.CDLL('libc.so.6').malloc_trim(0)
        except (OSError, AttributeError):
            pass


class PeakMemory:
    """Context manager measuring the peak memory of the code it wraps (see module doc)."""

    def __init__(self, device: torch.device, interval: float = 0.001):
        self.device = device
        self.interval = interval
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> 'PeakMemory':
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
        else:
            release_free_memory()
            self.baseline = rss_bytes()
            self.peak = self.baseline
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, rss_bytes())

    @property
    def extra_mb(self) -> float:
        """Peak above the level just before the measured code, in MiB."""
        return (self.peak - self.baseline) / MB


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


CLOCK_ENV = 'VITAMIN_BENCH_CLOCK'


def now() -> float:
    """Seconds for timing: wall clock, or with ``--clock cpu`` the CPU time of the calling
    thread (which runs all of torch's work with ``--threads 1``), so that other processes
    on a shared machine do not change the figures."""
    return time.thread_time() if os.environ.get(CLOCK_ENV) == 'cpu' else time.perf_counter()


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int,
               device: torch.device) -> List[float]:
    """Seconds (:func:`now`) of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = now()
        fn()
        synchronize(device)
        times.append(now() - start)
    return times


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def code_root() -> str:
    """The checkout whose ``vitamin_dense`` (and configs) this process measures."""
    return os.environ.get('VITAMIN_DENSE_CODE') or REPO


def run_isolated(argv: Sequence[str], timeout: Optional[float] = None,
                 code: Optional[str] = None) -> Dict[str, Any]:
    """Run ``tools/benchmark.py ARGV`` in a fresh interpreter; return its last JSON line.

    ``code``: measure another checkout's ``vitamin_dense`` (and configs) with
    this checkout's benchmark code (the ``--against`` baselines).
    """
    script = os.path.join(REPO, 'tools', 'benchmark.py')
    env = dict(os.environ)
    if code is not None:
        env['VITAMIN_DENSE_CODE'] = os.path.abspath(code)
    else:
        env.pop('VITAMIN_DENSE_CODE', None)
    proc = subprocess.run([sys.executable, script, *argv], capture_output=True, text=True,
                          timeout=timeout, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{')]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ['no output'])[-1]
        raise RuntimeError(f'benchmark worker failed (exit {proc.returncode}): {tail}')
    return json.loads(lines[-1])


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark has: device, threads, isolation, JSON output."""
    parser.add_argument('--device', default='auto', help='cpu, cuda, cuda:N or auto')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--precision', choices=('fp32', 'bf16'), default='fp32',
                        help='inference precision: float32, or bfloat16 autocast (GPUs; '
                             'several times slower on CPUs without bf16 instructions)')
    parser.add_argument('--clock', choices=('wall', 'cpu'), default='wall',
                        help="what is timed: wall-clock seconds, or 'cpu': CPU seconds of the "
                             'measuring thread (with --threads 1 on a CPU; steady on a shared '
                             'machine)')
    parser.add_argument('--in-process', action='store_true',
                        help='measure in this process (fast; peak memory less reliable)')
    parser.add_argument('--json', default=None, help='also write the results to this file')
    parser.add_argument('--worker', default=None, help=argparse.SUPPRESS)


def run_measurements(command: str, specs: Sequence[Dict[str, Any]],
                     measure: Callable[[Dict[str, Any]], Dict[str, Any]],
                     describe: Callable[[Dict[str, Any]], str],
                     args: argparse.Namespace) -> List[Dict[str, Any]]:
    """Measure every spec (each in a fresh ``tools/benchmark.py COMMAND --worker``
    process unless ``--in-process``), saying what runs on stderr; write ``--json``."""
    results = []
    for spec in specs:
        print(f'measuring {describe(spec)} ...', file=sys.stderr, flush=True)
        results.append(measure(spec) if args.in_process else
                       run_isolated([command, '--worker', json.dumps(spec)]))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return results


def memory_footnote(results: Sequence[Dict[str, Any]], isolated: bool) -> str:
    """How the 'peak MB' column was measured."""
    on_gpu = bool(results) and 'CPU' not in results[0]['device']
    return 'peak MB: ' + ('CUDA max_memory_allocated above the pre-run level' if on_gpu else
                          'RSS sampled every 1 ms, above the level before the runs') + \
        ('; each row measured in a fresh process' if isolated else
         '; measured in one process (allocator caches distort it)')


def format_table(rows: Sequence[Dict[str, Any]], columns: Sequence[tuple]) -> str:
    """A plain-text table; ``columns`` = ``(key, header, format)`` triples."""
    cells = [[h for _, h, _ in columns]]
    for row in rows:
        line = []
        for key, _, fmt in columns:
            value = row.get(key)
            line.append('-' if value is None else (fmt.format(value) if fmt else str(value)))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    out = []
    for n, r in enumerate(cells):
        out.append('  '.join(c.rjust(w) if n and _numeric(c) else c.ljust(w)
                             for c, w in zip(r, widths)).rstrip())
        if n == 0:
            out.append('  '.join('-' * w for w in widths))
    return '\n'.join(out)


def _numeric(text: str) -> bool:
    try:
        float(text.replace('x', '').replace(',', ''))
        return True
    except ValueError:
        return False


def parse_size(text: str) -> tuple:
    """``'1344'`` -> (1344, 1344); ``'800x1333'`` -> (800, 1333) (height x width)."""
    parts = text.lower().split('x')
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"bad size '{text}': use N or HxW") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise ValueError(f"bad size '{text}': use N or HxW with positive numbers")
    return values


def precision_context(device: torch.device, precision: Optional[str]):
    """The models' own inference autocast (``vitamin_dense.utils.precision``); a
    baseline checkout without it runs float32 only."""
    if precision in (None, 'fp32'):
        return contextlib.nullcontext()
    from vitamin_dense.utils.precision import inference_autocast
    return inference_autocast(device, precision)


def matmul_rate(device: torch.device, precision: str = 'fp32', n: Optional[int] = None,
                repeats: int = 5) -> Dict[str, Any]:
    """Achieved TFLOP/s of one square matrix product (the device's practical ceiling).

    bf16 on a GPU (n = 8192 by default), float32 on a CPU (n = 2048): the best
    of ``repeats`` timed products after one warm-up.
    """
    dtype = torch.bfloat16 if precision == 'bf16' else torch.float32
    n = n or (8192 if device.type == 'cuda' else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = min(time_calls(lambda: a @ b, repeats, 1, device))
    return {'n': n, 'dtype': str(dtype).replace('torch.', ''), 'seconds': best,
            'tflops': 2 * n ** 3 / best / 1e12}


def parse_variants(text: str, stride: Optional[int] = None) -> List[str]:
    """The open_clip names of a comma-separated ``--variants``, each checked (unknown
    names and a ``stride`` that does not fit a window fail here, before any work)."""
    from vitamin_dense.backbones import check_stride, get_variant
    from vitamin_dense.errors import ConfigError
    variants = [v.strip() for v in text.split(',') if v.strip()]
    if not variants:
        raise ConfigError('--variants names no model')
    for name in variants:
        window = get_variant(name).window_size
        if stride is not None:
            check_stride(stride, window)
    return variants


def worker_device(spec: Dict[str, Any]) -> torch.device:
    """A measurement's device (``spec['device']``), after setting ``spec['threads']``."""
    from vitamin_dense.apis import resolve_device
    if spec.get('threads'):
        torch.set_num_threads(int(spec['threads']))
    return resolve_device(spec.get('device', 'auto'))


def device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'CPU ({torch.get_num_threads()} threads)'


__all__ = ['MB', 'PeakMemory', 'rss_bytes', 'max_rss_bytes', 'time_calls', 'synchronize',
           'run_isolated', 'format_table', 'parse_size', 'device_name', 'add_run_arguments',
           'run_measurements', 'memory_footnote', 'code_root', 'precision_context',
           'matmul_rate', 'worker_device', 'parse_variants', 'now', 'CLOCK_ENV', 'REPO']
