"""One instance per process, built on first use: the engine, the text encoder, the tile cache.

Loading the model costs seconds and two threads (a panel task and a Processing algorithm) must not
both build it, so the first ``get`` builds under a lock and later ones return the same object;
``release`` drops it (closing it first when a ``close`` is given) so the next ``get`` builds anew.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ProcessShared(Generic[T]):
    def __init__(self, build: Callable[[], T], close: Callable[[T], None] | None = None):
        self._build, self._close = build, close
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value

    @property
    def current(self) -> T | None:
        """The instance if one was built and not released, without building one."""
        return self._value

    def release(self) -> None:
        with self._lock:
            if self._value is not None and self._close is not None:
                self._close(self._value)
            self._value = None
