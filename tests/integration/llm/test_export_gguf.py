"""`fintune llm export` on the real SmolLM2 with a small LoRA adapter: the file llama.cpp's own converter wrote
for SmolLM2 (the alias ships as GGUF) is the reference for names, shapes, layout and tokenizer metadata."""

from __future__ import annotations

import json

import gguf
import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from fintune.cli.main import main
from fintune.models.registry import ALIASES
from fintune.models.resolve import resolve_model

SAME_AS_LLAMA_CPP = [  # every key of llama.cpp's own SmolLM2 file that is not about its name or quantisation
    "general.architecture",
    *(f"llama.{k}" for k in ("block_count", "context_length", "embedding_length", "feed_forward_length")),
    *(f"llama.{k}" for k in ("attention.head_count", "attention.head_count_kv", "attention.layer_norm_rms_epsilon")),
    *(f"llama.{k}" for k in ("rope.freq_base", "rope.dimension_count", "vocab_size")),
    "tokenizer.ggml.add_bos_token",
    "tokenizer.ggml.add_space_prefix",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.chat_template",
]


@pytest.fixture(scope="module")
def smollm2_adapter(tmp_path_factory):
    """LoRA on v/o/gate only, with random non-zero B: q/k stay the base's, so their layout can be compared."""
    out = tmp_path_factory.mktemp("smollm2_adapter")
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(resolve_model("smollm2"), dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["v_proj", "o_proj", "gate_proj"]))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    model.save_pretrained(out)
    (out / "fintune_run.json").write_text(json.dumps({"base_model": "smollm2", "quant_bits": 16}))
    return out


def _weights(reader: gguf.GGUFReader, name: str) -> np.ndarray:
    tensor = next(t for t in reader.tensors if t.name == name)
    return gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(tuple(reversed(tensor.shape.tolist())))


@pytest.mark.slow
def test_smollm2_adapter_exports_to_llama_cpp_layout(smollm2_adapter, tmp_path, capsys):
    out = tmp_path / "smollm2-fin.gguf"
    args = ["llm", "export", "--adapter", str(smollm2_adapter), "--format", "gguf", "--output", str(out)]
    assert main(args) == 0  # the command itself loads the file back with transformers and checks greedy answers
    printed = " ".join(capsys.readouterr().out.split())
    assert "100.0% of decided ones" in printed

    source = ALIASES["smollm2"].source_path()
    assert source is not None
    ours, reference = gguf.GGUFReader(out), gguf.GGUFReader(source)
    assert {t.name: t.shape.tolist() for t in ours.tensors} == {t.name: t.shape.tolist() for t in reference.tensors}
    for key in SAME_AS_LLAMA_CPP:
        assert ours.fields[key].contents() == reference.fields[key].contents(), key
    # q/k untouched by the adapter: same rows as llama.cpp's own Q4_1 file, so the rotary permutation is its own
    for name in ("blk.3.attn_q.weight", "blk.3.attn_k.weight"):
        ref = _weights(reference, name)
        np.testing.assert_allclose(_weights(ours, name), ref, atol=2e-3 * np.abs(ref).max())
    # v was merged with the adapter: it moved away from the base
    v_diff = np.abs(_weights(ours, "blk.3.attn_v.weight") - _weights(reference, "blk.3.attn_v.weight")).max()
    assert v_diff > 1e-2
