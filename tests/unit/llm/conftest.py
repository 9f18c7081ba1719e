"""A tiny random Llama with a word-level ChatML tokenizer: the LLM pipeline's mechanics in seconds."""

from __future__ import annotations

import json

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
WORDS = (  # noqa: SIM905 - one readable sentence of words
    "system user assistant Instruction: What is the sentiment of this news? Please choose an answer from "
    "{negative/neutral/positive}. Input: Answer: negative neutral positive profit rose fell sales were flat "
    "the company said You are a Professional financial assistant. Does headline talk about price going up? "
    "Yes No {Yes/No}. gold"
).split()


def make_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(["<unk>", "<|im_start|>", "<|im_end|>", *dict.fromkeys(WORDS)])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",  # as SmolLM2: pad == end-of-turn, which must still be learned
        bos_token="<|im_start|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tok.chat_template = CHATML
    return tok


@pytest.fixture(params=["bf16-cpu", "fp32-cpu"])
def cpu_kind(request, monkeypatch) -> torch.dtype:
    """Pretend to be a CPU with native bf16 or one without, for fintune's dtype and bitsandbytes' own probe."""
    import bitsandbytes.nn.modules

    from fintune.models import device

    native_bf16 = request.param == "bf16-cpu"
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: native_bf16)
    monkeypatch.setattr(bitsandbytes.nn.modules, "has_avx512bf16", lambda: native_bf16)
    return device.pick_dtype("cpu")


@pytest.fixture(scope="session")
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    return make_tokenizer()


def make_tiny_llm(folder, num_hidden_layers: int = 3, hidden_size: int = 32, tokenizer=None, spare_rows: int = 0):
    """Save a tiny random Llama and a tokenizer (default the word-level one) into `folder`; `spare_rows`
    embedding rows no token uses."""
    tok = tokenizer if tokenizer is not None else make_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok) + spare_rows,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        tie_word_embeddings=True,
        initializer_range=0.3,  # the frozen head must be able to express a confident answer
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory):
    return make_tiny_llm(tmp_path_factory.mktemp("tiny_llm"))


@pytest.fixture
def fpb_file(tmp_path):
    rows = [
        {"id": f"r{i}", "text": text, "label": label}
        for i, (text, label) in enumerate(
            [("profit rose", "positive"), ("sales fell", "negative"), ("sales were flat", "neutral")] * 8
        )
    ]
    path = tmp_path / "fpb.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
