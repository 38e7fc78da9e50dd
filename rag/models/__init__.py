"""Language models behind one interface (`rag.models.lm.LanguageModel`): transformers (hf_model, with
its decoding in hf_decode), an OpenAI-compatible HTTP backend (openai_backend), the shipped default
model's location (default_model), and what the loop needs of any model's text: step boundaries (steps)
and token bytes (tokens). Nothing here knows the loop."""
