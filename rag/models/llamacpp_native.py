"""llama.cpp's native ``/completion`` endpoint, where the HTTP backend talks to a ``llama-server``.

Why not ``/v1/completions``: its replies say ``finish_reason: "stop"`` both for end-of-sequence and for a
stop string, and leave the stop string's tokens out, so the loop could not tell an answer that ended
from a step cut by a stop string. The native reply says which (``stop_type``, ``stopping_word``) and
carries each token's id, bytes, log-prob and top alternatives.

**The n-gram ban.** The loop decodes with ``no_repeat_ngram_size`` (rag/loop/config.py; 3 by default):
a token that would repeat an n-gram of the answer is banned. llama.cpp has no such sampler, so the ban
is applied here, exactly: a greedy (or sampled) continuation is the banned decoding's own up to the first
token that completes a repeated n-gram (the ban changes nothing before it); that token is asked again
with every banned token's logit set to -inf (``logit_bias``), and decoding goes on from there. Each
violation costs two more requests; prompts go as token ids (``/tokenize`` once), so nothing is
re-tokenised in between.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

# llama-server samples with top-k 40, min-p 0.05 and more unless told otherwise; the in-process model (and
# vLLM) sample from the plain tempered distribution: the same request must mean the same distribution.
# cache_prompt off: llama.cpp documents that reusing a slot's cached prompt can change the logits (prompt
# and generation batches differ), and the tests saw it: the same question answered two ways depending on
# what the slot had served before. Recomputing the prompt costs time, not answers.
NEUTRAL_SAMPLERS = {"top_k": 0, "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.0, "presence_penalty": 0.0,
                    "frequency_penalty": 0.0, "dry_multiplier": 0.0, "xtc_probability": 0.0, "mirostat": 0,
                    "cache_prompt": False}


def token_bytes(entry: dict[str, Any]) -> bytes:
    """A reply entry's token as bytes ("" for a token whose text the server withheld; see `restore_withheld`)."""
    return bytes(entry.get("bytes") or str(entry.get("token", "")).encode())


def restore_withheld(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The result's token entries, each with its text.

    llama-server holds back the text of tokens that may begin a stop string until it knows whether the stop
    string follows; when the reply ends there (the token limit), ``content`` has the text but those
    tokens' entries come with an empty ``token`` and ``bytes``. Their text is taken from the same token
    among the entry's own top alternatives (there under greedy decoding), else — for the last such token —
    from what ``content`` holds beyond the other tokens. Without this, a step's text lost its line break
    and the stop string after it went unseen (a base model's "\nQuestion:").
    """
    entries = [dict(e) for e in result.get("completion_probabilities") or []]
    for e in entries:
        if not token_bytes(e) and e.get("id") is not None:
            alt = next((a for a in e.get("top_logprobs") or [] if a.get("id") == e["id"] and token_bytes(a)), None)
            if alt is not None:
                e["token"], e["bytes"] = alt.get("token", ""), list(token_bytes(alt))
    missing = [e for e in entries if not token_bytes(e)]
    if missing:
        content = str(result.get("content", "")).encode()
        known = b"".join(token_bytes(e) for e in entries)
        if len(missing) == 1 and missing[0] is entries[-1] and content.startswith(known) and len(content) > len(known):
            rest = content[len(known):]
            entries[-1]["token"], entries[-1]["bytes"] = rest.decode("utf-8", "replace"), list(rest)
    return entries


def choice_of(result: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """One native result as an OpenAI-style choice carrying ``stop_reason`` (vLLM's field: the stop string,
    or None for end-of-sequence)."""
    entries = restore_withheld(result)
    text = result.get("content", "")
    last = str(entries[-1].get("token", "")) if entries else None
    if result.get("stop_type") == "eos" and last is not None and (not last or not text.endswith(last)):
        entries.pop()  # the end-of-sequence token: not part of the answer (the in-process model leaves it out too)
    return {"index": result.get("index", index), "text": text, "logprobs": {"content": entries},
            "finish_reason": "length" if result.get("stop_type") == "limit" else "stop",
            "stop_reason": (result.get("stopping_word") or None) if result.get("stop_type") == "word" else None}


def as_openai(data: Any) -> dict[str, Any]:
    """A native reply (one object, or a list for ``n`` > 1) as an OpenAI-style reply with usage."""
    results = data if isinstance(data, list) else [data]
    return {"choices": [choice_of(r, i) for i, r in enumerate(results)],
            "usage": {"prompt_tokens": int(results[0].get("tokens_evaluated") or 0) if results else 0,
                      "completion_tokens": sum(int(r.get("tokens_predicted") or 0) for r in results)}}


def banned(seq: Sequence[int], size: int) -> set[int]:
    """Tokens that would complete an n-gram already in ``seq`` (transformers' NoRepeatNGramLogitsProcessor)."""
    if size <= 0 or len(seq) < size - 1:
        return set()
    key = tuple(seq[len(seq) - size + 1:])
    return {seq[i + size - 1] for i in range(len(seq) - size + 1) if tuple(seq[i:i + size - 1]) == key}


def first_violation(history: Sequence[int], new: Sequence[int], size: int) -> int | None:
    """The index of the first token of ``new`` that the ban forbids after ``history`` + the tokens before it."""
    seq = list(history)
    for j, tok in enumerate(new):
        if tok in banned(seq, size):
            return j
        seq.append(tok)
    return None


Post = Callable[[dict[str, Any]], dict[str, Any]]  # one native request → its reply


def decode_with_ban(post: Post, prompt_ids: list[int], history: list[int], body: dict[str, Any], size: int,
                    max_new_tokens: int, stop: Sequence[str]) -> tuple[dict[str, Any], int, int]:
    """One choice decoded under the n-gram ban (module docstring): the choice (OpenAI-style, as `choice_of`),
    the requests made and the tokens evaluated. ``body`` holds the sampling fields; ``history`` is the
    answer's tokens before this step (what the ban looks at, besides the new ones)."""
    entries: list[dict[str, Any]] = []
    calls = evaluated = 0
    end: dict[str, Any] = {"stop_type": "limit"}
    while len(entries) < max_new_tokens:
        ids = [int(e["id"]) for e in entries]
        reply = post({**body, "prompt": prompt_ids + ids, "n_predict": max_new_tokens - len(entries), "n": 1})
        calls, evaluated = calls + 1, evaluated + int(reply.get("tokens_evaluated") or 0)
        new = restore_withheld(reply)
        j = first_violation(history + ids, [int(e["id"]) for e in new], size)
        if j is None:
            entries += new
            end = reply
            break
        entries += new[:j]
        ids = [int(e["id"]) for e in entries]
        ban = sorted(banned(history + ids, size))
        one = post({**body, "prompt": prompt_ids + ids, "n_predict": 1, "n": 1,
                    "logit_bias": [[t, False] for t in ban]})
        calls, evaluated = calls + 1, evaluated + int(one.get("tokens_evaluated") or 0)
        entries += restore_withheld(one)[:1]
        if one.get("stop_type") in ("eos", "word") or not one.get("completion_probabilities"):
            end = one
            break
    text = b"".join(token_bytes(e) for e in entries).decode("utf-8", "replace")
    stop_type, word = end.get("stop_type"), end.get("stopping_word") or ""
    hit = min(((text.find(s), s) for s in stop if s and s in text), default=None)
    if hit is not None:  # a stop string across two requests, which the server could not see whole
        text, stop_type, word = text[:hit[0]], "word", hit[1]
        kept, length = [], 0
        for e in entries:
            if length >= len(text):
                break
            kept.append(e)
            length += len(token_bytes(e).decode("utf-8", "replace"))
        entries = kept
    result = {"content": text, "completion_probabilities": entries, "stop_type": stop_type, "stopping_word": word}
    return choice_of(result), calls, evaluated
