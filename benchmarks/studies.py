"""The seed's three side studies, each small enough to run on the default model on a CPU.

1. ``own-text-entropy``: the model's mean token entropy (teacher-forced) on text it generated
   itself vs. on text people wrote for the same prompt (reference answers; Wikipedia passages).
   Token-confidence triggers read exactly this statistic, so if it is deflated on the model's own
   text, a trigger is fooled by fluent own guesses.
2. ``rephrase``: answers to K paraphrased prompt templates (ProSA-style sensitivity); does the
   confidence under the default template predict agreement across templates?
3. ``confidence-ranked``: among N samples pick the one with the highest answer-span confidence
   (mean token log-prob), vs. greedy and vs. an arbitrary sample (RLSF: confidence as a selection signal).

Each returns a result dict and a small Markdown table; `benchmarks/cli/study.py` writes both to
``study_<name>.json`` / ``study_<name>.md`` in a run folder, and the bench report includes the tables.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable, Sequence

from benchmarks.datasets import QAExample
from benchmarks.metrics import contains, normalize_answer, roc_auc, token_f1
from rag.loop.prompts import PromptTemplates
from rag.models.lm import Prompt
from rag.models.steps import SentenceEnd

ANSWER_TOKENS = 32
PASSAGE_WORDS = 60
REPHRASE_TEMPLATES = (
    PromptTemplates().closed_book,  # the loop's own template comes first: its confidence is the one tested
    "{question}",
    "Q: {question}\nA:",
    "Please give a short answer to this question: {question}",
    "I have a question. {question}? Reply with just the answer.",
)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _closed_prompt(question: str) -> Prompt:
    return PromptTemplates().build(question)


def _greedy(lm: Any, prompt: Any, tokens: int = ANSWER_TOKENS):
    return lm.generate([prompt], max_new_tokens=tokens, step_end=SentenceEnd())[0][0]


def _token_stats(lm: Any, prompt: Any, text: str) -> tuple[float, float] | None:
    g = lm.score(prompt, text)
    if not g.logprobs:
        return None
    return _mean(g.entropies), -_mean(g.logprobs)


# -- 1. own-text entropy ----------------------------------------------------------------------------
def own_text_entropy(lm: Any, examples: Sequence[QAExample], progress: Callable = iter) -> dict[str, Any]:
    rows: dict[str, list[tuple[float, float]]] = {"own answer": [], "reference answer": [], "own passage": [], "human passage": []}
    for ex in progress(examples):
        prompt = _closed_prompt(ex.question)
        own = _greedy(lm, prompt).text.strip()
        for kind, text in (("own answer", own), ("reference answer", ex.answers[0])):
            if text and (st := _token_stats(lm, prompt, text)):
                rows[kind].append(st)
        title, gold = ex.metadata.get("gold_title"), ex.metadata.get("gold_text")
        if title and gold:  # sets with a gold passage: the same topic written by the model and by people
            p_prompt = Prompt.user(f"Write a short encyclopedia paragraph about {title}.")
            own_p = lm.generate([p_prompt], max_new_tokens=2 * PASSAGE_WORDS)[0][0].text.strip()
            human = " ".join(gold.split()[:PASSAGE_WORDS])
            for kind, text in (("own passage", own_p), ("human passage", human)):
                if text and (st := _token_stats(lm, p_prompt, text)):
                    rows[kind].append(st)
    table = {k: {"n": len(v), "entropy": _mean([e for e, _ in v]), "nll": _mean([n for _, n in v])} for k, v in rows.items() if v}
    ratios = {}
    for own, human in (("own answer", "reference answer"), ("own passage", "human passage")):
        if own in table and human in table and table[own]["entropy"] > 0:
            ratios[f"{human} / {own}"] = table[human]["entropy"] / table[own]["entropy"]
    return {"study": "own-text-entropy", "questions": len(examples), "texts": table, "entropy_ratios": ratios}


def own_text_markdown(r: dict[str, Any]) -> str:
    lines = ["## Side study: entropy on the model's own text", "",
             f"{r['questions']} questions; teacher-forced mean token entropy and NLL (nats) of each text under the same prompt.", "",
             "| text | n | mean token entropy | mean NLL per token |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['n']} | {v['entropy']:.3f} | {v['nll']:.3f} |" for k, v in r["texts"].items()]
    lines += [""] + [f"- entropy ratio {k}: **{v:.2f}×**" for k, v in r["entropy_ratios"].items()]
    t = r["texts"]
    for own, human in (("own answer", "reference answer"), ("own passage", "human passage")):
        if own in t and human in t and t[own]["nll"] > 0:
            lines.append(f"- NLL (surprisal) ratio {human} / {own}: **{t[human]['nll'] / t[own]['nll']:.2f}×**")
    return "\n".join(lines)


# -- 2. rephrase robustness -------------------------------------------------------------------------
def rephrase(lm: Any, examples: Sequence[QAExample], templates: Sequence[str] = REPHRASE_TEMPLATES,
             progress: Callable = iter) -> dict[str, Any]:
    items = []
    for ex in progress(examples):
        gens = [_greedy(lm, Prompt.user(t.format(question=ex.question))) for t in templates]
        base = gens[0]
        texts = [g.text.strip() for g in gens]
        # agreement of each paraphrase's answer with the default one (SQuAD token F1, symmetric enough for short answers)
        agreement = _mean([token_f1(t, [texts[0]]) for t in texts[1:]])
        conf = math.exp(base.mean_logprob) if base.logprobs else 0.0
        items.append({"id": ex.id, "confidence": conf, "agreement": agreement,
                      "correct": contains(texts[0], ex.answers), "answers": texts})
    confs = [i["confidence"] for i in items]
    agree = [i["agreement"] for i in items]
    robust = [a >= 0.5 for a in agree]
    quartiles = []
    if len(items) >= 4:
        order = sorted(range(len(items)), key=lambda i: confs[i])
        for q in range(4):
            idx = order[q * len(items) // 4:(q + 1) * len(items) // 4]
            quartiles.append({"quartile": q + 1, "n": len(idx), "confidence": _mean([confs[i] for i in idx]),
                              "agreement": _mean([agree[i] for i in idx]), "accuracy": _mean([items[i]["correct"] for i in idx])})
    return {"study": "rephrase", "questions": len(items), "templates": list(templates),
            "spearman": _spearman(confs, agree), "roc_auc_robust": roc_auc([-c for c in confs], [not r for r in robust]),
            "quartiles": quartiles, "items": items}


def _spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    if len(x) < 3:
        return None
    from scipy.stats import spearmanr

    rho = spearmanr(x, y).statistic
    return None if rho != rho else float(rho)


def rephrase_markdown(r: dict[str, Any]) -> str:
    lines = ["## Side study: rephrase robustness vs. confidence", "",
             f"{r['questions']} questions, {len(r['templates'])} prompt templates. Agreement = mean token F1 of each "
             "paraphrased prompt's answer with the default prompt's answer; confidence = mean token probability of the "
             f"default answer. Spearman ρ(confidence, agreement) = {_fmt(r['spearman'])}; ROC-AUC of low confidence for "
             f"a non-robust answer (agreement < 0.5) = {_fmt(r['roc_auc_robust'])}.", "",
             "| confidence quartile | n | mean confidence | mean agreement | accuracy |", "|---|---|---|---|---|"]
    lines += [f"| Q{q['quartile']} | {q['n']} | {q['confidence']:.3f} | {q['agreement']:.3f} | {100 * q['accuracy']:.1f} % |"
              for q in r["quartiles"]]
    return "\n".join(lines)


# -- 3. confidence-ranked answers -------------------------------------------------------------------
def confidence_ranked(lm: Any, examples: Sequence[QAExample], samples: int = 10, temperature: float = 1.0,
                      seed: int = 0, progress: Callable = iter) -> dict[str, Any]:
    acc: dict[str, list[float]] = {"greedy": [], "first sample": [], "highest confidence": [], "majority vote": [], "any sample (oracle)": []}
    for ex in progress(examples):
        prompt = _closed_prompt(ex.question)
        greedy = _greedy(lm, prompt).text.strip()
        drawn = [s for s in lm.generate([prompt], n=samples, temperature=temperature, max_new_tokens=ANSWER_TOKENS,
                                        step_end=SentenceEnd(), seed=seed)[0] if s.text.strip() and s.logprobs]
        if not drawn:
            continue
        best = max(drawn, key=lambda s: s.mean_logprob)
        votes = Counter(normalize_answer(s.text) for s in drawn).most_common(1)[0][0]
        majority = next(s for s in drawn if normalize_answer(s.text) == votes)
        acc["greedy"].append(contains(greedy, ex.answers))
        acc["first sample"].append(contains(drawn[0].text, ex.answers))
        acc["highest confidence"].append(contains(best.text, ex.answers))
        acc["majority vote"].append(contains(majority.text, ex.answers))
        acc["any sample (oracle)"].append(max(contains(s.text, ex.answers) for s in drawn))
    return {"study": "confidence-ranked", "questions": len(acc["greedy"]), "samples": samples, "temperature": temperature,
            "accuracy": {k: _mean(v) for k, v in acc.items()}}


def confidence_ranked_markdown(r: dict[str, Any]) -> str:
    lines = ["## Side study: confidence-ranked answers", "",
             f"{r['questions']} questions, {r['samples']} samples at temperature {r['temperature']}; answer-span confidence = "
             "mean token log-prob of the sample. Accuracy = answer containment.", "",
             "| answer chosen by | accuracy |", "|---|---|"]
    lines += [f"| {k} | {100 * v:.1f} % |" for k, v in r["accuracy"].items()]
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


STUDIES: dict[str, tuple[Callable, Callable]] = {
    "own-text-entropy": (own_text_entropy, own_text_markdown),
    "rephrase": (rephrase, rephrase_markdown),
    "confidence-ranked": (confidence_ranked, confidence_ranked_markdown),
}
