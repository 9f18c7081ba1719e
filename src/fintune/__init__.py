"""fintune: fine-tune embedding models and instruction LLMs for finance, with held-out proof."""

__version__ = "0.1.0"
