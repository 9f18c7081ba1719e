"""GGUF export on a tiny random Llama with a byte-level BPE tokenizer: layout, tokenizer, checks, atomic writes."""

from __future__ import annotations

import json

import gguf
import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast
from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

from fintune.cli.main import main
from fintune.errors import OutputExistsError, UsageError
from fintune.llm import export_gguf as eg
from fintune.llm.export_gguf import GGUFCheck, export_gguf, permute_qk
from fintune.llm.merge import PROBES
from tests.helpers import random_lora_adapter

from .conftest import CHATML, WORDS, make_tiny_llm

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _bpe_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE (the kind GGUF's `gpt2` model describes), trained on the probes in a blink."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator([*PROBES, " ".join(WORDS)], trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>"
    )
    tok.unk_token = "<|endoftext|>"
    tok.chat_template = CHATML
    return tok


@pytest.fixture(scope="module")
def bpe_llm_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bpe_llm")
    torch.manual_seed(0)
    # a few embedding rows no token uses: written as [PAD] tokens
    make_tiny_llm(folder, num_hidden_layers=2, hidden_size=64, tokenizer=_bpe_tokenizer(), spare_rows=4)
    return folder


@pytest.fixture(scope="module")
def adapter_dir(bpe_llm_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("adapter")
    random_lora_adapter(bpe_llm_dir, out, seed=1, record_base=True)  # random B: the merge changes the weights
    return out


@pytest.fixture(scope="module")
def f16_export(adapter_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("out") / "tiny.gguf"
    return path, export_gguf(path, adapter=adapter_dir)


def test_permutation_matches_llama_cpp_and_transformers_undoes_it():
    rows = np.arange(8, dtype=np.float32)[:, None]  # two heads of head_dim 4: rotary halves [0,1|2,3]
    # llama.cpp pairs the halves: per head, rows (0,2,1,3) -- written out by hand
    assert permute_qk(rows, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    w = np.random.default_rng(0).normal(size=(48, 5)).astype(np.float32)
    back = LlamaTensorProcessor()._reverse_permute_weights
    assert np.array_equal(back(permute_qk(w, 8), 8, 8), w)
    assert np.array_equal(back(permute_qk(w, 8, 2), 8, 2), w)
    assert not np.array_equal(permute_qk(w, 8, 2), w)


def test_f16_file_carries_weights_tokenizer_and_template(f16_export, adapter_dir, bpe_llm_dir):
    path, check = f16_export
    assert check.ok and check.decided_agreement == 1.0 and check.probes == len(PROBES)
    # f16 rounding may flip a near-tie among the random model's flat prompt positions, rarely
    assert check.argmax_agreement >= 0.98 and check.max_rel_logit_diff < 1e-2 and check.tokenizer_match
    assert check.size_bytes == path.stat().st_size
    reader = gguf.GGUFReader(path)
    tok = AutoTokenizer.from_pretrained(bpe_llm_dir)
    fields = reader.fields
    assert fields["general.architecture"].contents() == "llama"
    assert fields["tokenizer.ggml.model"].contents() == "gpt2"
    assert fields["tokenizer.ggml.pre"].contents() == "gpt2"  # a plain ByteLevel pre-tokenizer
    assert fields["tokenizer.chat_template"].contents() == CHATML
    tokens = fields["tokenizer.ggml.tokens"].contents()
    types = fields["tokenizer.ggml.token_type"].contents()
    assert len(tokens) == len(tok) + 4 and tokens[-1] == f"[PAD{len(tok) + 3}]"
    assert tokens[:3] == SPECIALS and types[:3] == [gguf.TokenType.CONTROL] * 3
    assert types[3] == gguf.TokenType.NORMAL and types[-1] == gguf.TokenType.UNUSED
    assert fields["tokenizer.ggml.eos_token_id"].contents() == tok.convert_tokens_to_ids("<|im_end|>")
    merges = json.loads((bpe_llm_dir / "tokenizer.json").read_text())["model"]["merges"]
    assert fields["tokenizer.ggml.merges"].contents() == [" ".join(m) for m in merges]
    by_name = {t.name: t for t in reader.tensors}
    assert "output.weight" not in by_name  # tied: llama.cpp reuses token_embd
    assert by_name["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert by_name["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert len(by_name) == 1 + 2 * 9 + 1  # embeddings, 9 per block, final norm


def test_f16_weights_are_the_merged_weights(f16_export, adapter_dir, tmp_path):
    from fintune.llm.merge import merge_adapter

    path, _ = f16_export
    merge_adapter(adapter_dir, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").state_dict()
    tensors = {t.name: t for t in gguf.GGUFReader(path).tensors}
    q = tensors["blk.1.attn_q.weight"]
    on_disk = np.asarray(q.data, dtype=np.float32).reshape(64, 64)
    want = permute_qk(merged["model.layers.1.self_attn.q_proj.weight"].numpy(), 4)
    np.testing.assert_allclose(on_disk, want, rtol=1e-3, atol=1e-3)  # f16 rounding only
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    got = loaded.state_dict()["model.layers.1.self_attn.k_proj.weight"]
    torch.testing.assert_close(got, merged["model.layers.1.self_attn.k_proj.weight"], rtol=1e-3, atol=1e-3)


def test_q8_0_is_smaller_and_keeps_most_choices(f16_export, adapter_dir, tmp_path):
    path = tmp_path / "tiny-q8.gguf"
    check = export_gguf(path, adapter=adapter_dir, quantize="q8_0")
    assert check.ok and check.argmax_agreement >= eg.Q8_MIN_AGREEMENT
    types = {t.name: t.tensor_type for t in gguf.GGUFReader(path).tensors}
    assert types["blk.0.ffn_up.weight"] == gguf.GGMLQuantizationType.Q8_0
    assert types["output_norm.weight"] == gguf.GGMLQuantizationType.F32
    assert path.stat().st_size < f16_export[0].stat().st_size


def test_plain_model_without_adapter(bpe_llm_dir, tmp_path):
    check = export_gguf(tmp_path / "base.gguf", model=str(bpe_llm_dir))
    assert check.ok and (tmp_path / "base.gguf").is_file()


def test_existing_file_is_kept_unless_overwrite(bpe_llm_dir, tmp_path):
    out = tmp_path / "m.gguf"
    out.write_text("old")
    with pytest.raises(OutputExistsError, match="already exists"):
        export_gguf(out, model=str(bpe_llm_dir))
    assert out.read_text() == "old"
    export_gguf(out, model=str(bpe_llm_dir), overwrite=True)
    assert gguf.GGUFReader(out).fields["general.architecture"].contents() == "llama"


def test_failed_check_writes_nothing(bpe_llm_dir, tmp_path, monkeypatch):
    out = tmp_path / "m.gguf"
    out.write_text("old")
    bad = _check("f16", 0.5, 0.6)
    monkeypatch.setattr(eg, "check_gguf", lambda *a, **k: bad)
    with pytest.raises(
        eg.GGUFMismatchError, match=r"differently.*50\.0% of probe positions, 60\.0% of decided.*nothing"
    ):
        export_gguf(out, model=str(bpe_llm_dir), overwrite=True)
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf"]  # no temporary left behind


def _check(quantize: str, agree: float, decided: float, tokenizer: bool = True) -> GGUFCheck:
    return GGUFCheck(
        quantize, agree, decided, greedy_match=2, probes=3, max_rel_logit_diff=0, tokenizer_match=tokenizer
    )


def test_check_thresholds():
    assert _check("f16", 0.99, 1.0).ok  # a flipped near-tie is allowed (and diverged one greedy answer)
    assert not _check("f16", 0.999, 0.999).ok  # a flipped clear choice is not
    assert _check("q8_0", 0.95, 0.96).ok
    assert not _check("q8_0", 0.85, 0.99).ok
    assert not _check("f16", 1.0, 1.0, tokenizer=False).ok  # a different tokenizer fails either way


def test_bad_requests_are_refused(tiny_llm_dir, bpe_llm_dir, tmp_path):
    with pytest.raises(UsageError, match="byte-level BPE"):
        export_gguf(tmp_path / "w.gguf", model=str(tiny_llm_dir))  # word-level: no GGUF tokenizer model
    with pytest.raises(UsageError, match=r"\.gguf file"):
        export_gguf(tmp_path / "w.bin", model=str(bpe_llm_dir))
    with pytest.raises(UsageError, match="--quantize"):
        export_gguf(tmp_path / "w.gguf", model=str(bpe_llm_dir), quantize="q4_0")  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


def test_cli_export_reports_the_check(bpe_llm_dir, tmp_path, capsys):
    out = tmp_path / "cli.gguf"
    args = ["llm", "export", "--model", str(bpe_llm_dir), "--format", "gguf", "--quantize", "f16"]
    assert main([*args, "--output", str(out)]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert f"wrote {out} (f16," in printed and "100.0% of decided ones" in printed
    assert main([*args, "--output", str(out)]) == 2  # exists, no --overwrite: one clear line
    assert "already exists" in capsys.readouterr().err


def test_check_catches_a_wrong_layout_or_vocabulary(adapter_dir, tmp_path, monkeypatch):
    """The check is not vacuous: q/k left in HF's layout, or two tokens swapped, are refused."""
    with monkeypatch.context() as m:
        m.setattr(eg, "permute_qk", lambda w, *a: w)
        with pytest.raises(eg.GGUFMismatchError, match="decided ones"):
            export_gguf(tmp_path / "a.gguf", adapter=adapter_dir)
    vocab_tokens = eg.vocab_tokens

    def swapped(tokenizer, size):  # the first two tokens of a probe trade places
        tokens, types = vocab_tokens(tokenizer, size)
        i, j = tokenizer(PROBES[0])["input_ids"][:2]
        tokens[i], tokens[j] = tokens[j], tokens[i]
        return tokens, types

    monkeypatch.setattr(eg, "vocab_tokens", swapped)
    with pytest.raises(eg.GGUFMismatchError, match="tokenizer differs"):
        export_gguf(tmp_path / "b.gguf", adapter=adapter_dir)
    assert not list(tmp_path.iterdir())
