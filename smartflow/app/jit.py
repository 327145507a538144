"""numba cache placement. Must run before anything imports numba.

numba's on-disk cache is keyed on each kernel's own source file, not on the modules it calls, so a
changed layout constant or helper can load a stale compiled kernel. We therefore put the cache in a
sub-directory named by a digest of every kernel source file plus the numba/numpy versions: any
change gets a fresh cache, and an upgrade never needs a manual purge.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import tempfile
from pathlib import Path


KERNELS_DIR = Path(__file__).resolve().parent.parent / "kernels"


def kernels_digest() -> str:
    """Return a short digest of the kernel sources and the compiler versions."""
    h = hashlib.sha256()
    for f in sorted(KERNELS_DIR.glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    for dist in ("numba", "numpy", "llvmlite"):
        try:
            h.update(importlib.metadata.version(dist).encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(b"-")
    return h.hexdigest()[:16]


def configure_numba_cache(base: str | os.PathLike[str] | None = None) -> Path:
    """Point ``NUMBA_CACHE_DIR`` at ``<base>/<digest>`` and return it.

    ``base`` defaults to an existing ``NUMBA_CACHE_DIR`` (honoured, e.g. systemd's CacheDirectory),
    else ``$XDG_CACHE_HOME/smartflow/numba``, else a directory under the system temp dir.
    """
    if base is None:
        base = os.environ.get("SMARTFLOW_NUMBA_BASE") or os.environ.get("NUMBA_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = Path(xdg) / "smartflow" / "numba"
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError:
            base = Path(tempfile.gettempdir()) / "smartflow-numba"
    path = Path(base) / kernels_digest()
    path.mkdir(parents=True, exist_ok=True)
    # Remember the base so child processes (and repeated calls) do not nest digests.
    os.environ["SMARTFLOW_NUMBA_BASE"] = str(base)
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    return path
