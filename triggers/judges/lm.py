"""The LM judge: the configured language model asked whether two answers say the same thing.

It takes any `Sampler` (the loop's own model by default) and sends a plain-string prompt, which a
backend renders as one user message, decoded greedily. The prompt follows jlko's
`EntailmentLLM.equivalence_prompt`, but asks one symmetric yes/no question instead of entailment
in each direction: one LM call per pair, and a small model answers yes/no more reliably than
a three-way NLI label.
"""
from __future__ import annotations

from dataclasses import dataclass

from triggers.base import TriggerConfigError
from triggers.protocols import Sampler

PROMPT = (
    'We are evaluating answers to the question "{question}"\n'
    "Answer 1: {a}\n"
    "Answer 2: {b}\n"
    "Do Answer 1 and Answer 2 give the same answer to the question? Reply with yes or no only."
)


def parse_yes_no(reply: str) -> bool:
    """True for a reply starting with "yes"; anything else (no, unclear) is not a match, as jlko
    treats an unparsable reply as "not entailed"."""
    words = reply.strip().lower().lstrip("*\"' ").split()
    return bool(words) and words[0].strip(".,!:;*") == "yes"


@dataclass
class LMJudge:
    sampler: Sampler | None = None  # None: the trigger hands in the step's model on first use
    max_new_tokens: int = 4
    name: str = "lm"
    calls: int = 0

    def equivalent(self, question: str, a: str, b: str) -> bool:
        if self.sampler is None:
            raise TriggerConfigError("the lm judge has no language model to ask")
        prompt = PROMPT.format(question=question, a=a.strip(), b=b.strip())
        reply = self.sampler.generate([prompt], n=1, temperature=0.0, max_new_tokens=self.max_new_tokens)[0][0]
        self.calls += 1
        return parse_yes_no(reply.text)
