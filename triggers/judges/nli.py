"""The NLI judge: any local Hugging Face sequence-classification NLI model (e.g. a DeBERTa-MNLI).

No NLI model ships offline with this project; point ``nli:PATH`` at a folder you have (or a hub id
already in the local cache). Which output index means entailment or contradiction is read from
the model's ``config.id2label``, never assumed: MNLI checkpoints disagree on the order. As in
jlko's `compute_uncertainty_measures.py` (``condition_on_question``), the question can be
prepended to both answers so "Paris" is judged as an answer to *this* question.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from triggers.base import TriggerConfigError
from triggers.judges.base import Implication

_KINDS = (("entail", Implication.ENTAILMENT), ("contradict", Implication.CONTRADICTION), ("neutral", Implication.NEUTRAL))


def verdicts_from_id2label(id2label: Mapping[int, str]) -> list[Implication]:
    """Output index → verdict. Labels other than entailment/contradiction/neutral (e.g.
    "not_entailment") count as neutral; entailment and contradiction must both be present."""
    size = max(int(i) for i in id2label) + 1
    out = [Implication.NEUTRAL] * size
    seen = set()
    for idx, label in id2label.items():
        for prefix, kind in _KINDS:
            if str(label).strip().lower().startswith(prefix):
                out[int(idx)] = kind
                seen.add(kind)
    if not {Implication.ENTAILMENT, Implication.CONTRADICTION} <= seen:
        raise TriggerConfigError(f"NLI model labels {dict(id2label)} name no ENTAILMENT and CONTRADICTION classes")
    return out


class NLIJudge:
    """Directional three-way verdicts from an NLI classifier; both directions in one forward pass."""

    name = "nli"

    def __init__(self, model, tokenizer, condition_on_question: bool = True, max_length: int = 256) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.condition_on_question = condition_on_question
        self.max_length = max_length
        self.verdicts = verdicts_from_id2label(model.config.id2label)

    @classmethod
    def load(cls, model_id_or_path: str | os.PathLike, condition_on_question: bool = True) -> "NLIJudge":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils.hub import is_offline_mode

        from corpora.hub import is_hub_id

        path = Path(model_id_or_path).expanduser()
        if path.is_file() or (not path.exists() and not is_hub_id(model_id_or_path)):
            what = "is a file, not a model folder" if path.is_file() else "no such model folder"
            raise TriggerConfigError(f"NLI model {str(model_id_or_path)!r}: {what} (give a local NLI model folder or a cached hub id)")
        kw = {"local_files_only": True} if is_offline_mode() or path.exists() else {}
        try:
            tok = AutoTokenizer.from_pretrained(str(model_id_or_path), **kw)
            model = AutoModelForSequenceClassification.from_pretrained(str(model_id_or_path), **kw)
        except (OSError, ValueError) as exc:
            raise TriggerConfigError(f"cannot load NLI model {str(model_id_or_path)!r}: {str(exc).splitlines()[0]}") from None
        return cls(model, tok, condition_on_question=condition_on_question)

    def pairs(self, question: str, a: str, b: str) -> list[tuple[str, str]]:
        """(premise, hypothesis) for a ⇒ b and b ⇒ a, with the question prepended when asked."""
        if self.condition_on_question and question:
            a, b = f"{question} {a}", f"{question} {b}"
        return [(a, b), (b, a)]

    def logits(self, question: str, a: str, b: str):
        import torch

        premises, hypotheses = zip(*self.pairs(question, a, b))
        enc = self.tokenizer(list(premises), list(hypotheses), return_tensors="pt", padding=True,
                             truncation=True, max_length=self.max_length)
        with torch.inference_mode():
            return self.model(**enc).logits.float()

    def implications(self, question: str, a: str, b: str) -> tuple[Implication, Implication]:
        ab, ba = self.logits(question, a, b).argmax(-1).tolist()
        return self.verdicts[ab], self.verdicts[ba]

    def equivalent(self, question: str, a: str, b: str) -> bool:
        return self.implications(question, a, b) == (Implication.ENTAILMENT, Implication.ENTAILMENT)
