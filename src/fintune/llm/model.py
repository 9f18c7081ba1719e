"""Load a causal LM and its tokenizer from an alias, folder or hub id."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from fintune.models.device import pick_device, pick_dtype
from fintune.models.resolve import resolve_model


def load_causal_lm(
    name: str, device: str | None = None, dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    folder = str(resolve_model(name))
    device = device or pick_device()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype or pick_dtype(device)).to(device)
    model.eval()
    return model, tokenizer
