"""Each PEFT method builds and takes a training step on a tiny random model, on both kinds of CPU."""

import pytest
import torch
from peft import get_peft_model
from transformers import AutoModelForCausalLM

from fintune.config.schema import LLMRunConfig
from fintune.llm.methods import (
    check_method_device,
    keep_4bit_layers_trainable,
    linear_module_names,
    lora_config,
    quantization_config,
)
from tests.unit.llm.conftest import make_tiny_llm

METHOD_CONFIGS = {
    "lora": {"method": "lora"},
    "dora": {"peft_use_dora": True},
    "rslora": {"peft_use_rslora": True},
    "pissa": {"method": "pissa"},
    "qlora-4bit": {"quant_bits": 4},
    "qlora-8bit": {"quant_bits": 8},
}


def _step(model, tokenizer) -> float:
    batch = tokenizer(["profit rose positive", "sales fell negative"], return_tensors="pt")
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    loss = model(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    moved = sum(not torch.equal(before[n], p.detach()) for n, p in model.named_parameters() if p.requires_grad)
    assert moved > 0, "no adapter weight changed"
    return float(loss.detach())


def _load(folder, cfg: LLMRunConfig, dtype: torch.dtype):
    """The base model as fintune's trainer loads it (llm.train.load_base) on a CPU."""
    quant = quantization_config(cfg, dtype)
    kwargs = {"quantization_config": quant, "device_map": {"": "cpu"}} if quant else {}
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kwargs)
    repack_was_on = keep_4bit_layers_trainable(base) if quant else 0
    return base, repack_was_on


@pytest.mark.parametrize("name", METHOD_CONFIGS)
def test_method_trains_a_step(name, cpu_kind, tiny_llm_dir, tiny_tokenizer):
    cfg = LLMRunConfig(**METHOD_CONFIGS[name])
    base, repack_was_on = _load(tiny_llm_dir, cfg, cpu_kind)
    assert base.dtype == cpu_kind
    # bitsandbytes would repack on a bf16 CPU: 3 layers x 7 linears, and hidden 32 < its block of 64
    assert repack_was_on == (21 if name == "qlora-4bit" and cpu_kind == torch.bfloat16 else 0)
    peft_cfg = lora_config(cfg, base)
    assert peft_cfg.r == 16 and peft_cfg.lora_alpha == 32  # alpha defaults to 2r
    assert peft_cfg.use_dora == (name == "dora")
    assert peft_cfg.use_rslora == (name == "rslora")
    model = get_peft_model(base, peft_cfg)
    if name == "dora":
        assert any("lora_magnitude_vector" in n for n, _ in model.named_parameters())
    if name.startswith("qlora"):
        assert cfg.resolved_method == "qlora"
        kinds = {type(m).__name__ for m in model.modules()}
        assert ("Linear4bit" if name.endswith("4bit") else "Linear8bitLt") in kinds
    assert torch.isfinite(torch.tensor(_step(model, tiny_tokenizer)))  # eval mode, as a validation pass


def _grads(model, batch) -> dict[str, torch.Tensor]:
    model.train()
    model.zero_grad()
    model(**batch, labels=batch["input_ids"]).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_validation_pass_leaves_4bit_training_intact(cpu_kind, tmp_path, tiny_tokenizer):
    """Widths bitsandbytes can repack (64, 128): without the guard its packed weights pass no gradient back."""
    folder = make_tiny_llm(tmp_path / "tiny64", num_hidden_layers=2, hidden_size=64)
    cfg = LLMRunConfig(quant_bits=4)
    base, _ = _load(folder, cfg, cpu_kind)
    model = get_peft_model(base, lora_config(cfg, base))
    batch = tiny_tokenizer(["profit rose positive", "sales fell negative"], return_tensors="pt")
    before = _grads(model, batch)
    model.eval()
    with torch.no_grad():
        model(**batch)
    after = _grads(model, batch)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_skipped_layers_get_no_adapters(tiny_llm_dir):
    base = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    names = linear_module_names(base)
    model = get_peft_model(base, lora_config(LLMRunConfig(lora_skip_layers=2), base))
    adapted = {n.split(".layers.")[1].split(".")[0] for n, _ in model.named_parameters() if "lora_" in n}
    assert adapted == {"2"}
    assert set(names) == {
        "down_proj",
        "gate_proj",
        "k_proj",
        "o_proj",
        "q_proj",
        "up_proj",
        "v_proj",
    }


def test_too_many_skipped_layers_is_an_error(tiny_llm_dir):
    base = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    with pytest.raises(ValueError, match="leaves none of the 3 layers"):
        lora_config(LLMRunConfig(lora_skip_layers=3), base)


def test_loftq_is_refused_on_cpu_before_loading():
    cfg = LLMRunConfig(method="loftq")
    assert lora_config(cfg).init_lora_weights == "loftq"
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        check_method_device(cfg, "cpu")
    check_method_device(cfg, "cuda")
