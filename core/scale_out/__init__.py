"""Batch labelling on Dask: the labeller's runner (``runner``), what the client ships to workers
(``ship``) and the standard-library bootstrap workers run before any of it is importable there
(``worker_boot``). See ``docs/scale-out.md``."""
