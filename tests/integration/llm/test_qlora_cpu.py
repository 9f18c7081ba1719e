"""QLoRA 4-bit on the real SmolLM2 on a CPU with native bf16 (forced, so every machine runs this path).

One path only: 4-bit on a CPU costs ~30 s of CPU per run here; the fp32 path is covered on the tiny model.
"""

from __future__ import annotations

import math

import pytest
import torch

from fintune.config.schema import LLMRunConfig
from fintune.llm import train
from fintune.llm.train import train_llm
from tests.unit.llm.conftest import cpu_kind  # noqa: F401 - the fixture

SMOLLM2_LINEARS = 30 * 7  # layers x (q, k, v, o, gate, up, down)


@pytest.mark.slow
@pytest.mark.parametrize("cpu_kind", ["bf16-cpu"], indirect=True)
def test_smollm2_qlora_4bit_trains_across_a_validation_pass(cpu_kind, shared_data, tmp_path, monkeypatch):  # noqa: F811
    turned_off: list[int] = []
    keep = train.keep_4bit_layers_trainable
    monkeypatch.setattr(train, "keep_4bit_layers_trainable", lambda model: turned_off.append(keep(model)))
    cfg = LLMRunConfig(
        task="fpb", quant_bits=4, max_train_examples=2, batch_size=2, num_epochs=2, eval_limit=1, max_seq_length=64
    )
    result = train_llm(cfg, tmp_path / "q4")
    # the second epoch trains after the first one's validation pass: the step bitsandbytes broke on bf16 CPUs
    assert result.steps == 2
    evals = [h["eval_fpb_loss"] for h in result.history if "eval_fpb_loss" in h]
    losses = [h["train_loss"] for h in result.history if "train_loss" in h]
    assert len(evals) == 2 and all(map(math.isfinite, evals + losses))
    assert cpu_kind == torch.bfloat16 and turned_off == [SMOLLM2_LINEARS]
    assert (tmp_path / "q4" / "adapter_model.safetensors").is_file()
