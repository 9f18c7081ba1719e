"""Instruction LLMs: loading, task prompts, batched generation and generation-based evaluation."""
