"""Convert a GGUF checkpoint once into a cached Hugging Face folder (bf16 safetensors + tokenizer)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from fintune.artifacts import atomic_dir
from fintune.models.loading import LOAD_LOCK
from fintune.paths import fintune_home

log = logging.getLogger(__name__)

MARKER = "fintune_conversion.json"


def cache_dir_for(alias: str, gguf_path: Path) -> Path:
    """Cache folder keyed by the GGUF file's identity, so a new package version converts anew."""
    stat = gguf_path.stat()
    key = hashlib.sha256(f"{gguf_path.name}:{stat.st_size}".encode()).hexdigest()[:12]
    return fintune_home() / "models" / f"{alias}-{key}"


def is_converted(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def convert_gguf(gguf_path: Path, output: Path) -> Path:
    """Dequantise `gguf_path` into `output` (written atomically); return `output`.

    transformers loads GGUF by dequantising, but marks the model as quantized and refuses
    `save_pretrained`; so the weights are copied into a plain model built from the same config.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if is_converted(output):
        return output
    log.info("Converting %s to a Hugging Face folder (once) at %s", gguf_path.name, output)
    folder, name = str(gguf_path.parent), gguf_path.name
    with LOAD_LOCK:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        # float32 is the GGUF kernels' native dtype (fastest); the copy below casts to bf16.
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.dtype = torch.bfloat16
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    # Tied output embeddings may be absent from the state dict; anything else is a real mismatch.
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    plain.generation_config = loaded.generation_config
    with atomic_dir(output, overwrite=True) as tmp:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps({"source": str(gguf_path), "dtype": "bfloat16"}, indent=2))
    return output
