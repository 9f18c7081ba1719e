"""Each PEFT method builds and takes a training step on a tiny random model."""

import pytest
import torch
from peft import get_peft_model
from transformers import AutoModelForCausalLM

from fintune.config.schema import LLMRunConfig
from fintune.llm.methods import check_method_device, linear_module_names, lora_config, quantization_config

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


@pytest.mark.parametrize("name", METHOD_CONFIGS)
def test_method_trains_a_step(name, tiny_llm_dir, tiny_tokenizer):
    cfg = LLMRunConfig(**METHOD_CONFIGS[name])
    quant = quantization_config(cfg, torch.float32)
    kwargs = {"quantization_config": quant, "device_map": {"": "cpu"}} if quant else {}
    base = AutoModelForCausalLM.from_pretrained(tiny_llm_dir, dtype=torch.float32, **kwargs)
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
    assert torch.isfinite(torch.tensor(_step(model, tiny_tokenizer)))


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
