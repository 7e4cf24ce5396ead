"""Polling for what real processes will do soon (a checkpoint, a node gone): one helper for every test module."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(condition: Callable[[], Any], timeout: float, what: str, details: Callable[[], str] | None = None,
             poll_s: float = 0.2) -> Any:
    """``condition()``'s first truthy value within ``timeout`` seconds; else an AssertionError naming
    ``what`` (and ``details()``, e.g. a job's logs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting for {what}" + (f":\n{details()}" if details else ""))
