"""RS-SAGE development package: data preparation, training, export, knowledge-base building,
evaluation, ablations and benchmarks.

Needs torch and transformers; the runtime in ``core`` never imports it, and the plugin ZIP
does not ship it.
"""
