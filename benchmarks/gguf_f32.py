"""A quantised GGUF rewritten with every tensor dequantised to float32: the weights the in-process model uses.

Why: transformers dequantises a GGUF to float32 and computes in float32; llama.cpp computes on the
quantised blocks (and quantises activations to 8 bits for the matrix products). Served as float32,
llama.cpp and the in-process model hold the very same numbers, so what still differs between them is
the arithmetic's order, not the weights — `benchmarks/perf_backends.py --f32` measures both ways.

    .venv/bin/python -m benchmarks.gguf_f32 IN.gguf OUT.gguf
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from corpora.cache import cache_dir


def dequantise(src: Path, dst: Path) -> Path:
    """Write ``dst`` (via a temporary name) with ``src``'s metadata and its tensors as float32."""
    import gguf
    import numpy as np
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(str(src))
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.partial")
    writer = gguf.GGUFWriter(str(tmp), arch)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue  # written by GGUFWriter itself
        value = gguf.LlamaFileType.ALL_F32 if field.name == gguf.Keys.General.FILE_TYPE else field.contents()
        kind = field.types[0]
        writer.add_key_value(field.name, value, kind, sub_type=field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)
    for t in reader.tensors:
        data = np.ascontiguousarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        writer.add_tensor(t.name, data, raw_dtype=gguf.GGMLQuantizationType.F32)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def f32_copy(src: Path) -> Path:
    """The float32 copy of ``src`` in the project's cache, made once."""
    dst = cache_dir() / "models" / f"{src.stem}.f32.gguf"
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        dequantise(src, dst)
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    args = ap.parse_args(argv)
    print(dequantise(args.src, args.dst))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
