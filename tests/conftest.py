"""Test-wide setup. The numba cache goes to a per-source-digest directory before numba loads."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from smartflow.app.jit import configure_numba_cache


configure_numba_cache(
    os.environ.get("SMARTFLOW_TEST_NUMBA_BASE")
    or Path(tempfile.gettempdir()) / "smartflow-test-numba"
)
