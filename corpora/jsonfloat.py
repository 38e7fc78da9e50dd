"""Non-finite floats in JSON, one convention for the whole project.

JSON has no infinity or NaN (Python's ``json`` writes ``Infinity``/``NaN``, which strict parsers
reject), yet scores can be infinite: an empty draft's token-confidence score is ``inf``. Every
writer (the answer trace, `arag ask --json`, the server, benchmark results and summaries) stores
them as the strings ``"inf"``, ``"-inf"`` and ``"nan"``, and every reader turns them back with
`read_float`. The module sits in the lowest layer so `rag` and `benchmarks` share it.
"""
from __future__ import annotations

import json
import math
from typing import Any


def json_float(x: float) -> float | str:
    """``x`` itself when finite, else ``"inf"``, ``"-inf"`` or ``"nan"`` (``float()`` reads each back)."""
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def encode_floats(obj: Any) -> Any:
    """A copy of ``obj`` (dicts, lists, tuples as lists) with every non-finite float as `json_float` writes it."""
    if isinstance(obj, float):
        return json_float(obj)
    if isinstance(obj, dict):
        return {k: encode_floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode_floats(v) for v in obj]
    return obj


def read_float(x: Any) -> float | None:
    """A score as stored in JSON back to a float: numbers, ``"inf"``/``"-inf"``/``"nan"``; None stays None."""
    if x is None:
        return None
    if isinstance(x, str) and x.strip().lower() not in ("inf", "-inf", "+inf", "nan", "infinity", "-infinity"):
        raise ValueError(f"not a stored score: {x!r}")
    return float(x)


def json_text(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` with non-finite floats as strings (never ``Infinity``) and non-ASCII kept."""
    return json.dumps(encode_floats(obj), ensure_ascii=False, allow_nan=False, **kwargs)
