"""Build a C++ source of this folder into a shared library once per machine, and load it.

The library is compiled with the system C++ compiler (`$CXX`, else g++, else c++) for the CPU it
runs on (-march=native), and cached under `$ATTNLAB_CACHE` (default ~/.cache/attnlab) by a hash of
the source and this folder's headers, the flags, the compiler's version and the CPU: later
processes load it in milliseconds, and concurrent first uses are safe (each compiles to a private
name, then renames atomically). The SHA-256 of the library is written beside it after the build
(`.so.sha256`); a cached library that does not match it (truncated, damaged) is built again rather
than loaded, since loading a damaged library can kill the process.
`ATTNLAB_NATIVE=0` turns every compiled kernel off; callers then use their PyTorch path.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import warnings
from pathlib import Path

from attnlab.store import atomic_write, atomic_write_text

SOURCE_DIR = Path(__file__).parent
FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-fno-math-errno", "-pthread")


def cache_dir() -> Path:
    return Path(os.environ.get("ATTNLAB_CACHE", Path.home() / ".cache" / "attnlab")) / "native"


def enabled() -> bool:
    """False when the user turned compiled kernels off with ATTNLAB_NATIVE=0."""
    return os.environ.get("ATTNLAB_NATIVE", "1").strip().lower() not in ("0", "false", "off", "no")


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++"):
        if name and shutil.which(name):
            return name
    return None


def _cpu_identity() -> str:
    """The CPU's model and feature flags: a library built with -march=native runs only on such a CPU."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags", "Features"))}))
    except OSError:
        return platform.processor() or platform.machine()


@functools.cache
def load(name: str) -> ctypes.CDLL | None:
    """The compiled `name.cpp` of this folder, or None (with a warning) when it cannot be built."""
    if not enabled():
        return None
    compiler = _compiler()
    if compiler is None:
        warnings.warn(f"no C++ compiler found: the {name} kernel falls back to PyTorch (slower)", stacklevel=2)
        return None
    source = SOURCE_DIR / f"{name}.cpp"
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    headers = [h.read_text() for h in sorted(SOURCE_DIR.glob("*.h"))]
    key = hashlib.sha256("\0".join([source.read_text(), *headers, " ".join(FLAGS), version, _cpu_identity(),
                                    platform.machine()]).encode()).hexdigest()[:16]
    target = cache_dir() / f"{name}-{key}.so"
    if not _verified(target):
        try:
            _compile(compiler, source, target)
        except (OSError, subprocess.CalledProcessError) as error:
            detail = getattr(error, "stderr", "") or str(error)
            warnings.warn(f"building the {name} kernel failed, falling back to PyTorch (slower): "
                          f"{detail.strip()[-500:]}", stacklevel=2)
            return None
    return ctypes.CDLL(str(target))


def _compile(compiler: str, source: Path, target: Path) -> None:
    """Build `source` into `target`, then write the library's checksum beside it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda scratch: subprocess.run([compiler, *FLAGS, str(source), "-o", str(scratch)],
                                                        check=True, capture_output=True, text=True), mode=0o755)
    atomic_write_text(_checksum_path(target), _sha256(target))


def _verified(target: Path) -> bool:
    """Whether the cached library `target` is there and matches the checksum written after its build."""
    try:
        return _checksum_path(target).read_text().strip() == _sha256(target)
    except OSError:
        return False


def _checksum_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
