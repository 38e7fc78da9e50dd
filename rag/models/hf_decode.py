"""Batched decoding for `rag.models.hf_model.HFLanguageModel`: many prompts, ``n`` samples each, one KV cache.

Why batch: a decode step of a small model at batch 1 is bound by reading the weights from memory;
reading them once for many rows is the lever. The prompts are left-padded to one length
with an attention mask and per-row position ids, so one prefill encodes them all and each row
continues from its own last position; the prefill's cache is repeated for the ``n`` samples of each
prompt, and a row that finishes leaves the batch (its cache, mask and position go with it), so
rows of uneven length cost only what they generate.

Everything that decides a row's text is per row: stop strings, step ends, loop detection, the
``on_text`` callback (and `rag.models.lm.StopRow`, which ends only the row whose callback raised it), the
repetition processors (over that row's answer tokens only), and sampling — each prompt draws from
its own generator seeded with the call's seed, so a prompt's samples do not depend on which other
prompts share its batch (nor on the order they are given in).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from rag.models.lm import CANCELLED, StopRow
from rag.models.steps import REPETITION, StepEnd, first_stop, loops


@dataclass(frozen=True)
class Decoding:
    """The settings of one `generate` call, shared by its prompts."""

    temperature: float
    top_p: float
    max_new_tokens: int
    stop: list[str]
    seed: int | None
    top_logprobs: int
    on_text: Callable[[int, str], None] | None
    step_end: StepEnd | None
    processors: object | None  # a transformers LogitsProcessorList, None when no repetition control is on
    stop_loops: bool = False


@dataclass
class Row:
    """One sequence being generated: of prompt ``prompt`` (index in its sub-batch), numbered ``number``
    for ``on_text`` (``i * n + j`` for sample j of the call's prompt i)."""

    prompt: int
    number: int
    history: list[int]  # the prompt's assistant-prefix tokens: what repetition controls look at besides ``ids``
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)
    tops: list[dict[str, float]] = field(default_factory=list)
    finished: bool = False  # the model emitted end-of-sequence
    ended: tuple[int, str | None] | None = None  # (cut, stop reason) once a stop, step end, loop or StopRow is seen

    @property
    def done(self) -> bool:
        return self.finished or self.ended is not None

    def advance(self, token: int, logprob: float, entropy: float, top: dict[str, float] | None, tokenizer,
                eos_ids: set[int], d: Decoding) -> None:
        """Take one token; report the text to ``on_text`` unless the token ended the row."""
        if token in eos_ids:
            self.finished = True
            return
        self.ids.append(token)
        self.logprobs.append(logprob)
        self.entropies.append(entropy)
        if top is not None:
            self.tops.append(top)
        text = tokenizer.decode(self.ids, skip_special_tokens=True)
        self.ended = _ending(text, d.stop, d.step_end)
        if self.ended is None and d.stop_loops and loops(self.ids):
            self.ended = (len(text), REPETITION)
        if self.ended is None and d.on_text is not None:
            try:
                d.on_text(self.number, text)
            except StopRow:
                self.ended = (len(text), CANCELLED)


def plan_batches(lengths: Sequence[int], n: int, max_new_tokens: int, max_batch_tokens: int) -> list[list[int]]:
    """Prompt indices grouped into sub-batches whose KV cache — rows × (longest prompt + new tokens) —
    stays within ``max_batch_tokens``; prompts of similar length share a batch, so little is padding.
    A prompt too long for the cap on its own still runs, alone."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):  # ascending: the newest prompt is the longest
        cur = batches[-1] if batches else None
        if cur is not None and (len(cur) + 1) * n * (lengths[i] + max_new_tokens) <= max_batch_tokens:
            cur.append(i)
        else:
            batches.append([i])
    return batches


def decode(model, tokenizer, eos_ids: set[int], prompts: Sequence[list[int]], histories: Sequence[list[int]],
           numbers: Sequence[int], n: int, d: Decoding) -> list[Row]:
    """Decode ``n`` rows per prompt (token ids, already rendered) in one batch; ``numbers[p]`` is the
    prompt's index in the whole call (for ``on_text`` row numbers). Returns the rows, prompt-major."""
    device = model.device
    rows = [Row(p, numbers[p] * n + j, list(histories[p])) for p in range(len(prompts)) for j in range(n)]
    gens = [_generator(device, d.seed) for _ in prompts] if d.temperature > 0 else []
    longest = max(len(p) for p in prompts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([[pad] * (longest - len(p)) + p for p in prompts], device=device)
    positions = torch.tensor([[0] * (longest - len(p)) + list(range(len(p))) for p in prompts], device=device)
    mask = None  # without padding the causal mask alone is right (and the fast path)
    if any(len(p) < longest for p in prompts):
        mask = torch.tensor([[0] * (longest - len(p)) + [1] * len(p) for p in prompts], device=device)
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    cache, logits = out.cache, out.logits[:, -1, :].float()
    if n > 1:  # one prefill per prompt, its cache repeated for the samples
        cache.batch_repeat_interleave(n)
        logits = logits.repeat_interleave(n, dim=0)
        mask = mask.repeat_interleave(n, dim=0) if mask is not None else None
    next_pos = torch.tensor([len(prompts[r.prompt]) for r in rows], device=device)
    active = list(range(len(rows)))  # row index of each batch position
    for step in range(d.max_new_tokens):
        logp = torch.log_softmax(logits, dim=-1)
        entropy = torch.special.entr(logp.exp()).sum(-1)  # 0·log 0 = 0: no NaN from -inf logits
        groups = _by_prompt(rows, active)
        nxt = _choose(_processed(logits, rows, active, groups, d), groups, gens, d)
        chosen = logp.gather(1, nxt[:, None])[:, 0]
        top = logp.topk(d.top_logprobs, dim=-1) if d.top_logprobs > 0 else None
        for k, i in enumerate(active):
            alts = None
            if top is not None:
                alts = dict(zip(tokenizer.convert_ids_to_tokens(top.indices[k].tolist()), top.values[k].tolist()))
            rows[i].advance(int(nxt[k]), float(chosen[k]), float(entropy[k]), alts, tokenizer, eos_ids, d)
        keep = [k for k, i in enumerate(active) if not rows[i].done]
        if not keep or step == d.max_new_tokens - 1:
            break
        if len(keep) < len(active):  # finished rows leave the batch
            idx = torch.tensor(keep, device=device)
            cache.batch_select_indices(idx)
            nxt, next_pos = nxt[idx], next_pos[idx]
            mask = mask[idx] if mask is not None else None
            active = [active[k] for k in keep]
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
        out = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=next_pos[:, None], cache=cache,
                    use_cache=True)
        cache, logits = out.cache, out.logits[:, -1, :].float()
        next_pos = next_pos + 1
    return rows


def _generator(device, seed: int | None) -> torch.Generator:
    """A prompt's own random generator: the call's seed, or a fresh one; the global RNG is left alone."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    return gen


def _by_prompt(rows: Sequence[Row], active: Sequence[int]) -> dict[int, list[int]]:
    """Batch positions of the active rows, per prompt (its rows have the same history and length)."""
    groups: dict[int, list[int]] = {}
    for k, i in enumerate(active):
        groups.setdefault(rows[i].prompt, []).append(k)
    return groups


def _processed(logits: torch.Tensor, rows: Sequence[Row], active: Sequence[int], groups: dict[int, list[int]],
               d: Decoding) -> torch.Tensor:
    """The logits the next token is chosen from: repetition controls applied per prompt, over its rows'
    own answer tokens (prefix + generated), which differ in length from prompt to prompt."""
    if not d.processors:
        return logits
    out = logits.clone()
    for ks in groups.values():
        # all active rows have generated the same number of tokens (finished ones left), so each group is rectangular
        past = torch.tensor([rows[active[k]].history + rows[active[k]].ids for k in ks], dtype=torch.long, device=logits.device)
        idx = torch.tensor(ks, device=logits.device)
        out[idx] = d.processors(past, logits[idx].clone())
    return out


def _choose(scores: torch.Tensor, groups: dict[int, list[int]], gens: Sequence[torch.Generator],
            d: Decoding) -> torch.Tensor:
    """Greedy argmax, or nucleus sampling with each prompt's own generator."""
    if d.temperature <= 0:
        return scores.argmax(-1)
    nxt = torch.empty(scores.shape[0], dtype=torch.long, device=scores.device)
    for p, ks in groups.items():
        idx = torch.tensor(ks, device=scores.device)
        nxt[idx] = _sample(scores[idx] / d.temperature, d.top_p, gens[p])
    return nxt


def _sample(logits: torch.Tensor, top_p: float, gen: torch.Generator) -> torch.Tensor:
    """Nucleus sampling: keep the smallest set of tokens whose probability mass reaches ``top_p``."""
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        sorted_p, idx = probs.sort(dim=-1, descending=True)
        cum = sorted_p.cumsum(-1)
        sorted_p[(cum - sorted_p) >= top_p] = 0.0  # always keeps the top token
        probs = torch.zeros_like(probs).scatter(1, idx, sorted_p)
    return torch.multinomial(probs, 1, generator=gen)[:, 0]


def processors(repetition_penalty: float, no_repeat_ngram_size: int):
    """transformers' own repetition controls (None when both are off)."""
    from transformers import LogitsProcessorList, NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

    procs = LogitsProcessorList()
    if repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(repetition_penalty))
    if no_repeat_ngram_size > 0:
        procs.append(NoRepeatNGramLogitsProcessor(no_repeat_ngram_size))
    return procs or None


def _ending(text: str, stop: Sequence[str], step_end: StepEnd | None) -> tuple[int, str | None] | None:
    """Where the text so far ends: (cut, stop string) at the earliest stop string or step end."""
    hit = first_stop(text, stop) if stop else None
    cut = step_end.end(text) if step_end is not None else None
    if cut is not None and (hit is None or cut < hit[0]):
        return cut, None
    return hit
