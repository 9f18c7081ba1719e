"""Merge a LoRA-family adapter into a float copy of its base and prove the merged model answers the same."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from fintune.artifacts import atomic_dir
from fintune.config.saved import read_llm_run
from fintune.config.schema import LLMRunConfig
from fintune.llm.model import adapter_base, peft_model, tokenizer_folder
from fintune.models.resolve import resolve_model

if TYPE_CHECKING:
    from peft import PeftModel

PROBES = (
    "What is the sentiment of this news? Operating profit rose to EUR 13.1 mn from EUR 8.7 mn.",
    "Explain the XBRL term 'AccountsPayableCurrent' in one sentence.",
    "Revenue was $120 million and costs were $90 million. What is the profit margin?",
)


@dataclass
class MergeCheck:
    max_abs_logit_diff: float
    argmax_agreement: float  # fraction of probe positions where both pick the same next token
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_abs_logit_diff <= self.tolerance and self.argmax_agreement == 1.0


def _probe_logits(model: PreTrainedModel | PeftModel, tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    enc = tokenizer(list(PROBES), return_tensors="pt", padding=True).to(model.device)
    with torch.inference_mode():
        return model(**enc).logits.float().cpu() * enc["attention_mask"].cpu()[..., None]


def _float_base(name: str, quant_bits: int, dtype: torch.dtype) -> PreTrainedModel:
    folder = str(resolve_model(name))
    if quant_bits in (4, 8):
        # The adapter learned against the quantised weights: merge into their de-quantised values.
        from fintune.llm.methods import quantization_config

        quant = quantization_config(LLMRunConfig(quant_bits=quant_bits), dtype)
        model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quant, device_map={"": "cpu"})
        model = model.dequantize()
        return model.to(dtype)
    return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)


def merge_adapter(
    adapter: str | Path,
    output: str | Path,
    model: str | None = None,
    dtype: torch.dtype = torch.float32,
    tolerance: float = 1e-3,
    overwrite: bool = False,
) -> MergeCheck:
    """Write base+adapter as one plain model folder; refuse to write if the merged outputs differ."""
    from transformers import AutoTokenizer

    adapter = Path(adapter)
    name = model or adapter_base(adapter) or ""
    run = read_llm_run(adapter)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder(adapter, str(resolve_model(name))))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    quant_bits = run.quant_bits if run else LLMRunConfig().quant_bits
    with_adapter = peft_model(_float_base(name, quant_bits, dtype), adapter, name)
    with_adapter.eval()
    before = _probe_logits(with_adapter, tokenizer)
    merged = with_adapter.merge_and_unload()
    after = _probe_logits(merged, tokenizer)
    scale = before.abs().max().clamp(min=1.0)
    check = MergeCheck(
        max_abs_logit_diff=float((before - after).abs().max() / scale),
        argmax_agreement=float((before.argmax(-1) == after.argmax(-1)).float().mean()),
        tolerance=tolerance,
    )
    if not check.ok:
        raise RuntimeError(
            f"merged model differs from base+adapter (relative logit diff {check.max_abs_logit_diff:.2e}, "
            f"argmax agreement {check.argmax_agreement:.3f}); nothing written"
        )
    with atomic_dir(output, overwrite=overwrite) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "fintune_merge.json").write_text(
            json.dumps(
                {
                    "base_model": name,
                    "adapter": str(adapter),
                    "check": check.__dict__,
                    "run": run.model_dump(mode="json") if run else {},
                },
                indent=2,
            )
        )
    return check
