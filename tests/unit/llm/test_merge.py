"""Merging an adapter: the merged model answers as base+adapter; a mismatched adapter is refused."""

import json

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from fintune.llm.merge import merge_adapter
from fintune.llm.model import AdapterMismatchError, load_causal_lm


def _adapter(base_dir, out):
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    # init_lora_weights=False: random B, so the adapter really changes the outputs
    model = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    model.save_pretrained(out)
    (out / "fintune_run.json").write_text(json.dumps({"base_model": str(base_dir), "quant_bits": 16}))
    return model


def test_merged_model_matches_base_plus_adapter(tiny_llm_dir, tiny_tokenizer, tmp_path):
    _adapter(tiny_llm_dir, tmp_path / "adapter")
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
    _adapter(tiny_llm_dir, tmp_path / "adapter")
    other = tmp_path / "other"
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=64,
            hidden_size=48,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    ).save_pretrained(other)
    tiny_tokenizer.save_pretrained(other)
    with pytest.raises(AdapterMismatchError, match="does not fit base model"):
        merge_adapter(tmp_path / "adapter", tmp_path / "merged", model=str(other))
    assert not (tmp_path / "merged").exists()
