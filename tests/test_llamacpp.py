"""The HTTP backend against a real llama.cpp ``llama-server`` (benchmarks/llamacpp_server.py) serving the
shipped SmolLM2 GGUF with 4 slots: what it can do (probed), single- and multi-step answers equal to the
in-process model's, samples beyond the server's ``n``, step ends, a bench, and `arag serve` in front of it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import openai
import pytest

from benchmarks.llamacpp_server import LlamaServer, free_port
from rag.apps.server import ServerThread, create_app
from rag.errors import UsageError
from rag.loop import AdaptiveRAG, LoopConfig
from rag.loop.prompts import PromptTemplates
from rag.models.http_capabilities import CONTINUE_FINAL_MESSAGE, RAW_PROMPT, Capabilities, probe_continuation
from rag.models.lm import Prompt
from rag.models.openai_backend import OpenAICompatibleModel
from rag.pipeline import Pipeline
from retrievers import build_retriever
from triggers import Never, TokenConfidence
from triggers.semantic_entropy import SemanticEntropy

pytestmark = pytest.mark.llamacpp

PARIS = "Write a long paragraph about the city of Paris, its history, its monuments and its food."
NOBEL = "who got the first nobel prize in physics"


@pytest.fixture(scope="module")
def remote(llama_server):
    lm = OpenAICompatibleModel.from_spec(f"openai:{llama_server.url}/smollm2")
    yield lm
    lm.close()


@pytest.fixture(scope="module")
def bm25(demo_docs):
    return build_retriever("bm25", demo_docs, progress=False)


def test_probe_finds_llama_cpp_its_slots_and_the_raw_prompt_route(remote):
    caps = remote.capabilities()
    assert caps == Capabilities("llama.cpp", RAW_PROMPT, False, 4)
    # the server's own rendering of the template is the in-process one
    prompt = PromptTemplates().build(NOBEL, prefix="The first")
    assert remote.render(prompt).endswith("The first")


def test_the_chat_route_continues_a_prefix_on_llama_server(remote, default_lm):
    """The generic probe (used for servers that are not llama.cpp) on a real server: llama-server takes
    vLLM's continue_final_message and echoes the prefix; cut off, its continuation is the raw-prompt route's,
    token for token. (In-process the same GGUF runs in fp32 on dequantised weights: near-ties can flip,
    so it is compared by log-probs.)"""
    route, echoes = probe_continuation(remote)
    assert (route, echoes) == (CONTINUE_FINAL_MESSAGE, True)
    chat = OpenAICompatibleModel(remote.base_url, "smollm2")
    chat._caps = Capabilities("llama.cpp", route, echoes, 4)
    prompt = Prompt.user("Describe Paris.", prefix="Paris is a city")
    via_chat = chat.generate([prompt], max_new_tokens=12)[0][0]
    via_raw = remote.generate([prompt], max_new_tokens=12)[0][0]
    local = default_lm.generate([prompt], max_new_tokens=12)[0][0]
    assert via_chat.text == via_raw.text and via_chat.logprobs == pytest.approx(via_raw.logprobs, abs=1e-4)
    assert not via_raw.text.startswith("Paris is a city")
    assert via_raw.tokens[0] == default_lm.detokenize(local.tokens[:1]) and via_raw.logprobs[0] == pytest.approx(local.logprobs[0], abs=0.05)


def test_single_step_answer_equals_in_process(remote, default_lm, bm25):
    config, question = LoopConfig(max_steps=1, step_tokens=32), "what is the capital of france"
    http = AdaptiveRAG(remote, bm25, TokenConfidence(), config=config).answer(question)
    local = AdaptiveRAG(default_lm, bm25, TokenConfidence(), config=config).answer(question)
    assert http.text == local.text
    assert [s.fired for s in http.steps] == [s.fired for s in local.steps]
    assert http.to_dict()["backend"]["server"] == "llama.cpp"
    assert "backend" not in local.to_dict()
    # token confidence reads exact chosen-token log-probs: the same score within the kernels' rounding
    assert http.steps[0].signal.score == pytest.approx(local.steps[0].signal.score, abs=0.02)


def test_the_nobel_answer_is_not_cut_before_an_initial(remote):
    """An answer over HTTP ends its first step where rag/models/steps.py ends it, not 8 tokens in."""
    answer = AdaptiveRAG(remote, None, Never(), config=LoopConfig(max_steps=1, step_tokens=48)).answer(NOBEL)
    first = answer.steps[0].text
    assert first.rstrip().endswith((".", "!", "?")), first
    assert answer.stop_reason != "repetition" and len(first.split()) > 8


def test_servers_without_token_ids_are_not_seen_as_looping(remote, llama_server):
    """OpenAI and vLLM send no token ids: stand-in ids from the token strings, not a constant, so the
    repetition check sees no loop in a normal answer (with -1 for every token, every step was cut at 8)."""
    prompt = PromptTemplates().build(NOBEL)
    with_ids = remote.generate([prompt], max_new_tokens=40)[0][0]
    reply = {"message": {"content": with_ids.text}, "finish_reason": "length",
             "logprobs": {"content": [{"token": t, "logprob": lp, "top_logprobs": []}
                                      for t, lp in zip(with_ids.tokens, with_ids.logprobs)]}}
    fresh = OpenAICompatibleModel(llama_server.url, "smollm2")
    without = fresh._generation(reply, None, 0)
    from rag.models.steps import loop_end

    assert all(i < 0 for i in without.token_ids) and loop_end(without.token_ids) is None
    assert len(set(without.token_ids)) == len(set(with_ids.token_ids))


@pytest.mark.slow
def test_multi_step_answer_has_the_in_process_steps(remote, default_lm):
    config = LoopConfig(max_steps=4, step_tokens=48)
    http = AdaptiveRAG(remote, None, Never(), config=config).answer(PARIS)
    local = AdaptiveRAG(default_lm, None, Never(), config=config).answer(PARIS)
    # each step ends at its sentence, even where the model's end-of-sequence came later in the same reply
    assert len(http.steps) == len(local.steps) == 4
    assert all(s.text.rstrip().endswith(".") and s.text.count(". ") == 0 for s in http.steps)
    assert [s.text for s in http.steps[:2]] == [s.text for s in local.steps[:2]]  # later: near-ties in the numerics


@pytest.mark.slow
def test_semantic_entropy_with_ten_samples_on_a_four_slot_server(remote):
    before = remote.usage.calls
    gens = remote.generate([PromptTemplates().build(NOBEL)], n=10, temperature=1.0, max_new_tokens=12, seed=3)[0]
    assert len(gens) == 10 and remote.usage.calls - before == 3  # 4 + 4 + 2 choices
    assert len({g.text for g in gens}) > 1  # seeds continue across requests: different samples
    again = remote.generate([PromptTemplates().build(NOBEL)], n=10, temperature=1.0, max_new_tokens=12, seed=3)[0]
    assert [g.text for g in again] == [g.text for g in gens]
    before = remote.usage.calls
    answer = AdaptiveRAG(remote, None, SemanticEntropy(samples=10), config=LoopConfig(max_steps=1, step_tokens=24)).answer(NOBEL)
    assert answer.steps[0].signal is not None and len(answer.steps[0].signal.details["clusters"]) >= 1
    assert remote.usage.calls - before >= 1 + 3  # the draft, then 10 samples in three requests


def test_a_server_limit_on_n_is_learned_from_its_error(llama_server):
    """A server whose limit is not known up front (no /props): its 400 names the limit, requests split."""
    lm = OpenAICompatibleModel(llama_server.url, "smollm2")
    lm._caps = Capabilities("openai-compatible", RAW_PROMPT, False, None)
    gens = lm.generate([PromptTemplates().build(NOBEL)], n=6, temperature=1.0, max_new_tokens=6, seed=1)[0]
    assert len(gens) == 6 and lm.capabilities().max_n == 4


def test_a_server_that_cannot_continue_refuses_multi_step_in_one_line(llama_server):
    lm = OpenAICompatibleModel(llama_server.url, "smollm2")
    lm._caps = Capabilities("openai-compatible", None, False, None)
    with pytest.raises(UsageError, match="cannot continue an answer.*--max-steps 1"):
        AdaptiveRAG(lm, None, Never(), config=LoopConfig(max_steps=2))
    assert AdaptiveRAG(lm, None, Never(), config=LoopConfig(max_steps=1, step_tokens=8)).answer(NOBEL).text


@pytest.mark.slow
def test_arag_bench_with_two_policies_over_llama_server(llama_server, tmp_path, repo_root, data_dir):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "rag.cli", "bench", "--dataset", "nq_open_oracle", "--limit", "2",
                           "--model", f"openai:{llama_server.url}/smollm2", "--policies", "never,token-confidence",
                           "--data-dir", str(data_dir), "--out", str(out)], capture_output=True, text=True, cwd=repo_root, timeout=600,
                          env={**os.environ, "CI": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["questions"] == 2
    assert {p["policy"] for p in summary["policies"]} >= {"never", "token-confidence"}


@pytest.mark.slow
def test_arag_serve_in_front_of_llama_server_streams(remote, bm25):
    pipe = Pipeline(lm=remote, retriever=bm25, trigger=Never(), config=LoopConfig(max_steps=2, step_tokens=32))
    with ServerThread(create_app(pipe)) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0, timeout=300)
        msgs = [{"role": "user", "content": NOBEL}]
        plain = client.chat.completions.create(model="default", messages=msgs)
        pieces = [c.choices[0].delta.content for c in client.chat.completions.create(model="default", messages=msgs,
                                                                                        stream=True)
                  if c.choices and c.choices[0].delta.content]
    assert plain.choices[0].message.content and "".join(pieces) == plain.choices[0].message.content
    assert plain.model_extra["arag"]["backend"]["server"] == "llama.cpp"


def test_the_launcher_prints_its_address_and_stops_on_sigterm(repo_root):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.llamacpp_server", "--port", str(port), "--parallel", "1"],
                            stdout=subprocess.PIPE, text=True, cwd=repo_root)
    try:
        assert proc.stdout.readline().strip() == f"listening on http://127.0.0.1:{port}/v1"
        assert LlamaServer(port=port).port == port
        models = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x").models.list().data
        assert models
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def test_the_n_gram_ban_llama_cpp_lacks_is_applied_exactly(remote, default_lm):
    """The loop decodes with no_repeat_ngram_size=3; llama.cpp has no such sampler, so the backend bans
    the repeating token itself (rag/models/llamacpp_native.py): the same text and tokens as in-process,
    and the end-of-sequence token is not one of the answer's tokens."""
    prompt = Prompt.user("Say: the cat sat on the mat, the cat sat on the mat, the cat sat on the mat.",
                         prefix="the cat sat on the mat, the cat")
    before = remote.usage.calls
    http = remote.generate([prompt], max_new_tokens=16, no_repeat_ngram_size=3)[0][0]
    local = default_lm.generate([prompt], max_new_tokens=16, no_repeat_ngram_size=3)[0][0]
    assert http.text == local.text and http.token_ids == local.token_ids
    assert remote.usage.calls - before > 1  # a banned token was asked again
    unbanned = remote.generate([prompt], max_new_tokens=16)[0][0]
    assert unbanned.text.startswith(" sat on the mat") and not http.text.startswith(" sat on the mat")
    ended = remote.generate([Prompt.user("Write the word Paris ten times.", prefix="Paris Paris")], max_new_tokens=16)[0][0]
    assert ended.finished and len(ended.tokens) == len(default_lm.generate(
        [Prompt.user("Write the word Paris ten times.", prefix="Paris Paris")], max_new_tokens=16)[0][0].tokens)


@pytest.fixture(scope="module")
def gemma_server():
    """The second shipped model family: Gemma-3-270M, a base model (its GGUF has no chat template)."""
    with LlamaServer("gemma3-270m", parallel=1, threads=2) as server:
        yield server


def test_a_base_model_is_prompted_as_one_and_answers(gemma_server):
    """llama-server reports its fallback chat template for a GGUF without one: the backend sees a base
    model, the loop gives it the few-shot Question/Answer prompt and stops at its next "Question:"."""
    lm = OpenAICompatibleModel.from_spec(f"openai:{gemma_server.url}/gemma")
    assert lm.capabilities().chat is False and lm.render(Prompt.user("a", prefix="b")) == "ab"
    answer = AdaptiveRAG(lm, None, Never(), config=LoopConfig(max_steps=3)).answer("what is the capital of france")
    assert "Paris" in answer.text and "Question" not in answer.text
    # Gemma writes " Paris\n\nQuestion:". In-process the step ends after " Paris" as soon as "Question" shows
    # after the line break, and the blank step after it ends the answer; llama-server cuts at the stop string
    # and returns " Paris\n", which must end where the in-process step does
    assert [s.text for s in answer.steps] == [" " + answer.text] and answer.stop_reason == "empty step"


def test_token_text_the_server_withholds_for_a_possible_stop_is_restored(llama_server):
    """A reply that ends on a token that may begin a stop string carries that token with empty text."""
    import httpx

    from rag.models.llamacpp_native import NEUTRAL_SAMPLERS, restore_withheld

    body = {"prompt": "The capital of France is", "n_predict": 1, "n_probs": 1, "temperature": 0, **NEUTRAL_SAMPLERS}
    plain = httpx.post(f"{llama_server.root}/completion", json=body, timeout=60).json()
    token = plain["completion_probabilities"][0]["token"]
    held = httpx.post(f"{llama_server.root}/completion", json={**body, "stop": [token + "\u00a7"]}, timeout=60).json()
    (entry,) = held["completion_probabilities"]
    assert entry["token"] == "" and held["content"] == token  # what llama-server sends
    (restored,) = restore_withheld(held)
    assert restored["token"] == token and bytes(restored["bytes"]) == token.encode()


def test_a_step_cut_by_the_server_at_a_stop_string_ends_where_in_process_it_does(remote):
    """A base model writes "France.\\n\\nQuestion:". In-process the step ends after "France." as soon as
    "Question" shows after the line break; llama-server stops at "\\nQuestion:" and returns "France.\\n" (the
    stop string starts at the second line break). The step must end after "France." there too, or the line
    break joins the answer and the next step starts after it (Gemma over llama-server: four steps where
    in-process has three)."""
    from rag.models.lm import Generation

    stepper = AdaptiveRAG(remote, None, Never(), config=LoopConfig(max_steps=4)).stepper
    text, tokens = " It is in France.\n", [" It", " is", " in", " France", ".", "\n\n"]
    cut = stepper._cut(Generation(text=text, tokens=tokens, token_ids=list(range(6)), logprobs=[-0.1] * 6, stop="\nQuestion:"))
    assert cut.text == " It is in France." and cut.stop is None and cut.tokens == tokens[:5]
    # no boundary before the stop string: the server's cut stands
    plain = Generation(text=" Paris", tokens=[" Paris"], token_ids=[1], logprobs=[-0.1], stop="\nQuestion:")
    assert stepper._cut(plain).text == " Paris" and stepper._cut(plain).stop == "\nQuestion:"
