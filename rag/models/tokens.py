"""A token's real bytes, and whether a run of tokens ends inside a UTF-8 character.

Byte-level BPE tokens ("ĠParis", "ĠðŁĺ") spell their bytes in the GPT-2 byte alphabet; a token may
hold only part of a multi-byte character (" 😀" is two tokens), which ``decode`` renders as "\\ufffd".
The byte ↔ character table is read from the ``tokenizers`` library's own ``ByteLevel``
pre-tokenizer (what these tokenizers run), not from a private transformers helper.
SentencePiece byte-fallback tokens ("<0xE6>") are single bytes; other tokens are their text.
"""
from __future__ import annotations

import codecs
import re
from functools import lru_cache
from typing import Sequence

_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@lru_cache(maxsize=1)
def byte_level_decoder() -> dict[str, int]:
    """Character of the byte-level alphabet → byte, for every byte that occurs in UTF-8 text."""
    from tokenizers.pre_tokenizers import ByteLevel

    chars = [chr(c) for c in range(0x80)] + [chr(c) for c in range(0x80, 0xC0)]  # ASCII, continuation bytes
    chars += [chr((lead & 0x1F) << 6) for lead in range(0xC2, 0xE0)]  # 2-byte leads
    chars += ["\u0800"] + [chr((lead & 0x0F) << 12) for lead in range(0xE1, 0xF0)]  # 3-byte leads
    chars += ["\U00010000"] + [chr((lead & 0x07) << 18) for lead in range(0xF1, 0xF5)]  # 4-byte leads
    table: dict[str, int] = {}
    pre = ByteLevel(add_prefix_space=False, use_regex=False)
    for ch in chars:
        raw = ch.encode("utf-8")
        (mapped, _), = pre.pre_tokenize_str(ch)
        table.update(zip(mapped, raw))
    return table


class TokenBytes:
    """``token string → bytes`` for one tokenizer (None: the token strings are already text pieces)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
        self.byte_level = type(decoder).__name__ == "ByteLevel"

    def __call__(self, token: str) -> bytes:
        if self.tokenizer is None:
            return token.encode("utf-8")
        if self.byte_level:
            table = byte_level_decoder()
            if all(c in table for c in token):
                return bytes(table[c] for c in token)
        m = _BYTE_FALLBACK.match(token)
        if m:
            return bytes([int(m.group(1), 16)])
        return self.tokenizer.convert_tokens_to_string([token]).encode("utf-8")

    def complete(self, tokens: Sequence[str]) -> int:
        """How many of ``tokens`` to keep so that their bytes do not end inside a UTF-8 character."""
        keep = len(tokens)
        while keep > 0:
            dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
            dec.decode(b"".join(self(t) for t in tokens[:keep]), final=False)
            if not dec.getstate()[0]:  # no bytes waiting for the rest of a character
                return keep
            keep -= 1
        return len(tokens)
