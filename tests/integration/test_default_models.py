"""The two embedded default models, for real: conversion, loading, embedding, generation."""

from __future__ import annotations

import json

import pytest
import torch

from fintune.models import gguf
from fintune.models.registry import ALIASES
from fintune.models.resolve import resolve_model

pytestmark = pytest.mark.slow


def test_interrupted_conversion_leaves_no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FINTUNE_HOME", str(tmp_path))
    source = ALIASES["smollm2"].source_path()
    target = gguf.cache_dir_for("smollm2", source)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr("transformers.PreTrainedTokenizerBase.save_pretrained", killed)
    with pytest.raises(KeyboardInterrupt):
        gguf.convert_gguf(source, target)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temporary folder left behind either


def test_smollm2_converts_once_to_a_plain_hf_folder_that_matches_the_gguf():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_model("smollm2")
    assert gguf.is_converted(folder)
    assert (folder / "model.safetensors").is_file()
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "bfloat16"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    assert resolve_model("smollm2") == folder  # cached: same folder, no second conversion

    source = ALIASES["smollm2"].source_path()
    reference = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    converted = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    ids = tokenizer("Quarterly revenue rose 12 % as margins improved", return_tensors="pt")
    with torch.no_grad():
        a, b = reference(**ids).logits, converted(**ids).logits
    assert torch.equal(a.argmax(-1), b.argmax(-1))
    assert (a - b).abs().max() < 0.05 * a.abs().max()  # bf16 storage rounding only


def test_minilm_embeds_financial_text_sensibly():
    from fintune.embed.model import load_embedder

    model = load_embedder("minilm")
    vecs = model.encode(
        ["Net revenue increased 10% year over year.", "Revenue grew ten percent from last year.", "The cat sat."],
        normalize_embeddings=True,
        convert_to_tensor=True,
    )
    assert vecs.shape == (3, 384)
    sims = vecs @ vecs.T
    assert sims[0, 1] > sims[0, 2] + 0.2
