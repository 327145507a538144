"""The official SDK as a test oracle, loaded without its network-calling package ``__init__``.

``import SmartApi`` executes ``smartConnect.py``, whose class body calls api.ipify.org with no
timeout; our tests never reach beyond loopback. So we load ``smartWebSocketV2.py`` by path under a
private module name. Constructing ``SmartWebSocketV2`` writes ``./logs/<date>/app.log`` into the
working directory; callers run it inside ``tmp_path`` (see ``sdk_client``).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


def _load() -> ModuleType:
    spec = importlib.util.find_spec("SmartApi")
    assert spec is not None, "smartapi-python is not installed"
    assert spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "smartWebSocketV2.py"
    mod_spec = importlib.util.spec_from_file_location("_sdk_ws2", path)
    assert mod_spec is not None
    assert mod_spec.loader is not None
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules["_sdk_ws2"] = module
    mod_spec.loader.exec_module(module)
    # logzero logs every frame at INFO to stderr; keep test output readable.
    logging.getLogger("logzero_default").setLevel(logging.CRITICAL)
    return module


sdk_ws2 = _load()
SmartWebSocketV2: Any = sdk_ws2.SmartWebSocketV2


def sdk_parse(frame: bytes) -> dict[str, Any]:
    """Parse a binary packet exactly as the SDK's client does (without constructing a client)."""
    parser = object.__new__(SmartWebSocketV2)
    result: dict[str, Any] = parser._parse_binary_data(frame)
    return result
