"""The benchmark commands of `arag` (bench, calibrate, study): each module has ``register(subparsers)``
and joins `arag` through the ``adaptive_rag.commands`` entry points in pyproject.toml, so the benchmark
floor sits on top of `rag` and `rag` never imports it."""
