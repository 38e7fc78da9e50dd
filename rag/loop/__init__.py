"""The loop: a question's way from draft to trigger to retrieval, one step at a time.

Rooms, lowest first: the settings (config), the text a step is made of (prompts, query, trace,
streaming), the step mechanics (stepper), one question's state machine (run), and its drivers
(batch for many questions, adaptive for one and the `AdaptiveRAG` facade).
"""
from rag.loop.adaptive import AdaptiveRAG
from rag.loop.config import LoopConfig

__all__ = ["AdaptiveRAG", "LoopConfig"]
