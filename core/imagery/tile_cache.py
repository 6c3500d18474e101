"""Encode once, answer many: the encoded tiles of recent regions, kept for the next question.

The image encoder is most of the cost of a question (it runs on every rotated view of every
tile); the experts that answer are cheap. A second question about the same region therefore
reuses the encoded tiles. The key holds everything that changes the pixels the encoder saw (file
and its modification time, bands, stretch, nodata rule, window, tile size, views), and the cache
is bounded by bytes, dropping the least recently used tiles first.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import numpy as np

from ..model.shared import ProcessShared

DEFAULT_MAX_BYTES = 256 * 2**20  # about 850 tiles with 4 views


class EncodedTileCache:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0
        self._scenes: OrderedDict[tuple, object] = OrderedDict()  # (tile key, labels) -> ClassifyResult

    @staticmethod
    def key(raster: str, bands, stretch, rule_text: str, window: tuple, tile: int, views: int) -> tuple:
        try:
            mtime = os.stat(raster).st_mtime_ns
        except OSError:
            mtime = None  # /vsi paths: keyed by name only
        return (raster, mtime, tuple(bands), tuple(np.round(stretch.low, 4)), tuple(np.round(stretch.high, 4)),
                rule_text, tuple(window), tile, views)

    def get(self, key: tuple):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item

    def put(self, key: tuple, tokens: np.ndarray, queries: np.ndarray) -> None:
        size = tokens.nbytes + queries.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = (tokens, queries)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (t, q) = self._items.popitem(last=False)
                self._bytes -= t.nbytes + q.nbytes

    def scene(self, key: tuple, labels: tuple):
        """The tile's scene classification for these labels, if an earlier question made it."""
        with self._lock:
            return self._scenes.get((key, labels))

    def put_scene(self, key: tuple, labels: tuple, result) -> None:
        with self._lock:
            self._scenes[(key, labels)] = result
            while len(self._scenes) > 4 * max(1, len(self._items)):  # small objects; follow the tiles
                self._scenes.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._scenes.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes


_shared: ProcessShared[EncodedTileCache] = ProcessShared(EncodedTileCache)


def shared_tile_cache() -> EncodedTileCache:
    """The panel's cache (one per QGIS process)."""
    return _shared.get()
