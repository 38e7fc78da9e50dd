"""Applications built on the pipeline: the terminal chat (chat, with conversation's turns), the
OpenAI-compatible server (server/) and the LlamaIndex adapters (llamaindex). The loop knows nothing of
them."""
