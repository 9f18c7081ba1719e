"""PEFT method settings from a run config: LoRA, QLoRA (4/8-bit), DoRA, rsLoRA, PiSSA and LoftQ init."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from peft import LoftQConfig, LoraConfig
from transformers import BitsAndBytesConfig

from fintune.config.schema import LLMRunConfig
from fintune.errors import UsageError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """Short names of the linear layers inside the transformer blocks (what PEFT's 'all-linear' picks)."""
    get_output = getattr(model, "get_output_embeddings", None)
    output = get_output() if callable(get_output) else None
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not output and ".layers." in f".{name}"
    }
    return sorted(names)


def lora_config(cfg: LLMRunConfig, model: PreTrainedModel | None = None) -> LoraConfig:
    method = cfg.resolved_method
    init: Any = True  # PEFT types it as literals, which cannot spell "pissa_niter_4"
    loftq: LoftQConfig | dict[str, Any] = {}  # PEFT's own default
    if method == "pissa":
        init = "pissa_niter_4"  # fast SVD: seconds instead of minutes for a full SVD of every layer
    elif method == "loftq":
        init = "loftq"
        loftq = LoftQConfig(loftq_bits=4)
    layers = None
    targets = cfg.target_modules
    if cfg.lora_skip_layers and model is not None:
        num_layers = model.config.num_hidden_layers
        if cfg.lora_skip_layers >= num_layers and "lora_skip_layers" not in cfg.model_fields_set:
            return lora_config(cfg.model_copy(update={"lora_skip_layers": 0}), model)  # default on a shallow model
        if cfg.lora_skip_layers >= num_layers:
            raise UsageError(f"lora_skip_layers {cfg.lora_skip_layers} leaves none of the {num_layers} layers")
        layers = list(range(cfg.lora_skip_layers, num_layers))
        # PEFT takes layers_to_transform only with a list of module names, not 'all-linear'.
        targets = linear_module_names(model) if targets == "all-linear" else targets
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.resolved_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        layers_to_transform=layers,
        use_dora=method == "dora" or cfg.peft_use_dora,
        use_rslora=method == "rslora" or cfg.peft_use_rslora,
        init_lora_weights=init,
        loftq_config=loftq,
        task_type="CAUSAL_LM",
    )


def check_method_device(cfg: LLMRunConfig, device: str) -> None:
    """Refuse, before any loading, a method the device cannot run."""
    if cfg.resolved_method == "loftq" and not device.startswith("cuda"):
        # PEFT's LoftQ initialisation quantises on a CUDA/XPU device by design (peft/utils/loftq_utils.py).
        raise UsageError("method 'loftq' needs a CUDA GPU (PEFT computes its initialisation there); use 'pissa' on CPU")


def quantization_config(cfg: LLMRunConfig, compute_dtype: torch.dtype) -> BitsAndBytesConfig | None:
    """bitsandbytes settings for QLoRA: nf4 with double quantisation, or LLM.int8()."""
    if cfg.quant_bits == 4:
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    if cfg.quant_bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


# bitsandbytes' Linear4bit sets this from its own CPU probe (AVX512-BF16), whatever dtype fintune picks.
_CPU_REPACK_FLAG = "support_avx512bf16_for_cpu"


def keep_4bit_layers_trainable(model: torch.nn.Module) -> int:
    """Turn off bitsandbytes' CPU inference repacking of 4-bit weights; returns how many layers it was on for.

    On a CPU with AVX512-BF16, a Linear4bit that runs in eval mode on an input without grad (any validation
    pass) repacks its weight for a bf16 inference kernel, once and for good. The repack crashes unless
    in_features is a multiple of the quantisation block (64) and out_features of 32, and the packed path has
    no backward: training after a validation pass would silently stop gradients through every frozen layer.
    """
    layers = [m for m in model.modules() if getattr(m, _CPU_REPACK_FLAG, False)]
    for module in layers:
        setattr(module, _CPU_REPACK_FLAG, False)
    return len(layers)
