"""Merging an adapter: the merged model answers as base+adapter; a mismatched adapter is refused."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from fintune.llm.merge import merge_adapter
from fintune.llm.model import AdapterMismatchError, load_causal_lm
from tests.helpers import random_lora_adapter
from tests.unit.llm.conftest import make_tiny_llm


def test_merged_model_matches_base_plus_adapter(tiny_llm_dir, tiny_tokenizer, tmp_path):
    random_lora_adapter(tiny_llm_dir, tmp_path / "adapter", record_base=True)
    check = merge_adapter(tmp_path / "adapter", tmp_path / "merged")
    assert check.ok and check.max_abs_logit_diff < 1e-4
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    with_adapter, _ = load_causal_lm(adapter=tmp_path / "adapter", device="cpu", dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    ids = tiny_tokenizer("profit rose Answer:", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        merged_logits, adapter_logits = merged(ids).logits, with_adapter(ids).logits
        assert torch.allclose(merged_logits, adapter_logits, atol=1e-4)
        assert not torch.allclose(merged_logits, base(ids).logits, atol=1e-3)  # the adapter mattered
    assert not any("lora_" in n for n, _ in merged.named_parameters())


def test_adapter_for_another_base_is_refused(tiny_llm_dir, tiny_tokenizer, tmp_path):
    random_lora_adapter(tiny_llm_dir, tmp_path / "adapter", record_base=True)
    other = tmp_path / "other"
    make_tiny_llm(other, hidden_size=48)  # another width: the adapter cannot fit it
    with pytest.raises(AdapterMismatchError, match="does not fit base model"):
        merge_adapter(tmp_path / "adapter", tmp_path / "merged", model=str(other))
    assert not (tmp_path / "merged").exists()
