"""Export a merged LoRA model (or a plain Llama folder) as one GGUF file for llama.cpp and Ollama, and prove it.

The `gguf` package supplies the writer, tensor names, quantisation and the special-token/merge/chat-template
reader (`SpecialVocab`). What lives in llama.cpp's `convert_hf_to_gguf.py` rather than in the package (the
vocabulary list with token types, the q/k permutation, the choice of tensor types) is written here.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from fintune.errors import FintuneError, OutputExistsError, UsageError
from fintune.llm.merge import PROBES
from fintune.models.gguf import MARKER as CONVERSION_MARKER
from fintune.models.resolve import resolve_model

if TYPE_CHECKING:
    import gguf
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

Quantize = Literal["f16", "q8_0"]
QUANTIZE_CHOICES: tuple[Quantize, ...] = ("f16", "q8_0")
GREEDY_TOKENS = 16  # new tokens generated per probe for the greedy comparison
# f16 moves SmolLM2's logits by ~0.03 (of ~40): where the reference's top two are closer than this, either
# pick is the same model's answer, and one flipped near-tie makes the rest of a greedy answer diverge.
TIE_MARGIN = 0.1
Q8_MIN_AGREEMENT = 0.9  # q8_0 rounds every weight: most, not all, next-token choices must survive


class GGUFMismatchError(FintuneError, RuntimeError):
    """The written file, loaded back, answers differently from the model it holds (try f16 instead of q8_0)."""


@dataclass
class GGUFCheck:
    """How the GGUF file, loaded back by transformers, answers the probes compared with the model as trained
    (base + adapter, before merging), the "reference".

    Positions are every token of the chat-formatted probes plus the reference's greedy answer, teacher-forced
    through both models. f16 passes when the top-1 token agrees at every decided position (top-2 margin above
    TIE_MARGIN logits); q8_0 when it agrees at Q8_MIN_AGREEMENT of all positions. Both need the same tokenizer.
    """

    quantize: str
    argmax_agreement: float  # fraction of all probe positions with the same top-1 token
    decided_agreement: float  # the same, over positions that are not near-ties for the reference
    greedy_match: int  # probes whose greedy answer is identical (reported; a near-tie flip changes the rest)
    probes: int
    max_rel_logit_diff: float
    tokenizer_match: bool  # the file's tokenizer encodes the chat-formatted probes to the same ids
    size_bytes: int = 0

    @property
    def ok(self) -> bool:
        if not self.tokenizer_match:
            return False
        if self.quantize == "f16":
            return self.decided_agreement == 1.0
        return self.argmax_agreement >= Q8_MIN_AGREEMENT

    @property
    def requirement(self) -> str:
        if self.quantize == "f16":
            return f"f16 needs 100% where the margin exceeds {TIE_MARGIN} logit"
        return f"q8_0 needs {Q8_MIN_AGREEMENT:.0%} of all positions"


# --- what convert_hf_to_gguf.py does and the gguf package does not -------------------------------------


def permute_qk(weights: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """llama.cpp's rotary layout for q/k rows (`LlamaModel.permute`); transformers undoes it on load.

    HF's rotary embedding pairs dimension i of a head with i + head_dim/2 (`rotate_half`); GGML's llama rope
    pairs adjacent dimensions (2i, 2i+1), so each head's rows are interleaved from its two halves.
    """
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    shape = weights.shape
    return weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def vocab_tokens(tokenizer: PreTrainedTokenizerBase, vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens by id with GGUF token types, padded to the model's vocab size (`get_vocab_base` in llama.cpp)."""
    import gguf

    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        if i not in by_id:  # embedding rows the tokenizer never produces
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def pre_tokenizer_name(tokenizer: PreTrainedTokenizerBase, base_folder: Path) -> str:
    """llama.cpp's name for the text-splitting regex (`tokenizer.ggml.pre`).

    llama.cpp picks it by hashing the tokenisation of a probe text; here: the name the base's own GGUF gave
    (aliases shipped as GGUF keep it), else the pre-tokenizer's shape for the byte-level shapes we know.
    """
    marker = base_folder / CONVERSION_MARKER
    if marker.is_file():
        import gguf

        source = Path(json.loads(marker.read_text())["source"])
        if source.is_file():
            field = gguf.GGUFReader(source).get_field("tokenizer.ggml.pre")
            if field is not None:
                return str(field.contents())
    spec = json.loads(tokenizer.backend_tokenizer.to_str()).get("pre_tokenizer") or {}
    parts = spec.get("pretokenizers", [spec])
    kinds = [p.get("type") for p in parts]
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt2"
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits"):
        return "smollm"
    log.warning("unknown pre-tokenizer %s: llama.cpp will split text with its default regex", kinds)
    return "default"


def _tensor_type(data: np.ndarray, quantize: Quantize) -> gguf.GGMLQuantizationType:
    """convert_hf_to_gguf's choice: vectors (norms) stay F32; matrices get the asked type where blocks fit."""
    import gguf

    if data.ndim < 2:
        return gguf.GGMLQuantizationType.F32
    if quantize == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0] == 0:
        return gguf.GGMLQuantizationType.Q8_0
    return gguf.GGMLQuantizationType.F16


# --- writing ----------------------------------------------------------------------------------------------


def _check_llama(config: Any) -> None:
    if config.model_type != "llama":
        raise UsageError(f"GGUF export supports Llama-architecture models; this one is {config.model_type!r}")
    rope = getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        raise UsageError(f"GGUF export does not carry rope scaling {rope!r} yet")


def write_gguf(model: PreTrainedModel, folder: Path, path: Path, quantize: Quantize, base_folder: Path) -> None:
    """Write `model` (tokenizer files in `folder`) to `path` as a llama GGUF."""
    import gguf
    from transformers import AutoTokenizer

    config = model.config
    _check_llama(config)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tok_json = json.loads(tokenizer.backend_tokenizer.to_str()) if tokenizer.is_fast else {}
    if tok_json.get("model", {}).get("type") != "BPE" or (tok_json.get("decoder") or {}).get("type") != "ByteLevel":
        raise UsageError(f"GGUF export supports byte-level BPE tokenizers; {folder} has another kind")
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(path.stem)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(_rope_theta(config)))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if quantize == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0)
    tokens, types = vocab_tokens(tokenizer, config.vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer_name(tokenizer, base_folder))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    # Merges, bos/eos/unk/pad ids, add_bos/add_eos flags and the chat template, as llama.cpp reads them.
    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=len(tokens))
    # Where the config is silent, state what the tokenizer does: llama.cpp's defaults differ by vocabulary type.
    plain = tokenizer("a")["input_ids"]
    special.add_special_token.setdefault("bos", bool(plain) and plain[0] == tokenizer.bos_token_id)
    special.add_special_token.setdefault("eos", bool(plain) and plain[-1] == tokenizer.eos_token_id)
    special.add_to_gguf(writer, quiet=True)
    writer.add_add_space_prefix(_adds_prefix_space(tok_json))
    if not tokenizer.chat_template:
        log.warning("the tokenizer has no chat template; Ollama/llama.cpp will need one supplied")
    _add_tensors(writer, model, quantize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _adds_prefix_space(tok_json: dict[str, Any]) -> bool:
    spec = tok_json.get("pre_tokenizer") or {}
    return any(p.get("add_prefix_space", False) for p in spec.get("pretokenizers", [spec]))


def _rope_theta(config: Any) -> float:
    params = getattr(config, "rope_parameters", None) or {}  # transformers 5 keeps it here
    return float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def _add_tensors(writer: gguf.GGUFWriter, model: PreTrainedModel, quantize: Quantize) -> None:
    import gguf

    config = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp and transformers reuse token_embd when output.weight is absent
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UsageError(f"no GGUF name for tensor {hf_name!r}")
        data = tensor.detach().float().cpu().numpy()
        if name.endswith(("attn_q.weight", "attn_q.bias")):  # llama.cpp permutes biases alike
            data = permute_qk(data, config.num_attention_heads)
        elif name.endswith(("attn_k.weight", "attn_k.bias")):
            data = permute_qk(data, config.num_attention_heads, config.num_key_value_heads)
        qtype = _tensor_type(data, quantize)
        if qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, data.astype(np.float32))
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(name, data.astype(np.float16))
        else:
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)


# --- checking ---------------------------------------------------------------------------------------------


@dataclass
class ProbeReference:
    """The model's own answers to PROBES, taken before merging: what the file must reproduce."""

    prompts: list[list[int]]  # chat-formatted probe ids
    answers: list[torch.Tensor]  # greedy answer ids
    logits: list[torch.Tensor]  # teacher-forced logits over prompt + answer


def _chat_ids(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        return list(tokenizer(str(text), add_special_tokens=False)["input_ids"])
    return list(tokenizer(prompt)["input_ids"])


def probe_reference(model: Any, tokenizer: PreTrainedTokenizerBase) -> ProbeReference:
    """Greedy answers (GREEDY_TOKENS each, one left-padded batch) and the logits along them."""
    prompts = [_chat_ids(tokenizer, p) for p in PROBES]
    width = max(map(len, prompts))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    model.eval()
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=False,
            max_new_tokens=GREEDY_TOKENS,
            min_new_tokens=GREEDY_TOKENS,  # no early stop: every answer has the same length
            pad_token_id=pad,
        )
        answers = [row[width:] for row in out]
        logits = [_forced(model, p, a) for p, a in zip(prompts, answers, strict=True)]
    return ProbeReference(prompts, answers, logits)


def _forced(model: Any, prompt: list[int], answer: torch.Tensor) -> torch.Tensor:
    full = torch.cat([torch.tensor(prompt), answer])[None]
    return model(full).logits[0].float()


def check_gguf(
    reference: ProbeReference, tokenizer: PreTrainedTokenizerBase, path: Path, quantize: Quantize
) -> GGUFCheck:
    """Load `path` with transformers and compare its top-1 choices along the reference answers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(path.parent), path.name
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    loaded_tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    tok_match = loaded_tok.chat_template == tokenizer.chat_template
    agree = total = greedy = decided = decided_agree = 0
    diff = 0.0
    for text, prompt, want, a in zip(PROBES, reference.prompts, reference.answers, reference.logits, strict=True):
        tok_match = tok_match and _chat_ids(loaded_tok, text) == prompt
        with torch.inference_mode():
            b = _forced(loaded, prompt, want)
        same = a.argmax(-1) == b.argmax(-1)
        top2 = a.topk(2, dim=-1).values
        clear = top2[:, 0] - top2[:, 1] > TIE_MARGIN
        agree, total = agree + int(same.sum()), total + a.shape[0]
        decided_agree, decided = decided_agree + int(same[clear].sum()), decided + int(clear.sum())
        # The file would answer greedily the same iff it picks each answer token given the ones before.
        start = len(prompt) - 1
        greedy += int(torch.equal(b[start : start + len(want)].argmax(-1), want))
        diff = max(diff, float((a - b).abs().max() / a.abs().max().clamp(min=1.0)))
    return GGUFCheck(
        quantize=quantize,
        argmax_agreement=agree / total,
        decided_agreement=decided_agree / decided if decided else 1.0,
        greedy_match=greedy,
        probes=len(PROBES),
        max_rel_logit_diff=diff,
        tokenizer_match=tok_match,
    )


# --- the command ------------------------------------------------------------------------------------------


def _load(adapter: Path | None, name: str) -> tuple[Any, PreTrainedTokenizerBase]:
    """The model to export (base + adapter, unmerged, as it was trained) and its tokenizer."""
    from transformers import AutoTokenizer

    from fintune.config.saved import read_llm_run
    from fintune.config.schema import LLMRunConfig
    from fintune.llm.merge import _float_base  # merge's own loader: the same base the merge command uses
    from fintune.llm.model import peft_model, tokenizer_folder

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder(adapter, str(resolve_model(name))))
    run = read_llm_run(adapter) if adapter is not None else None
    # A 4/8-bit adapter learned against quantised weights: merge's loader de-quantises them first.
    base = _float_base(name, run.quant_bits if run else LLMRunConfig().quant_bits, torch.float32)
    return (peft_model(base, adapter, name) if adapter is not None else base), tokenizer


def export_gguf(
    output: str | Path,
    adapter: str | Path | None = None,
    model: str | None = None,
    quantize: Quantize = "f16",
    overwrite: bool = False,
) -> GGUFCheck:
    """Merge `adapter` into its base (or take `model` as is), write `output` as GGUF, and prove it answers alike.

    The reference is base + adapter before merging, so the check covers the merge as well as the file. The file
    appears at `output` only after the check passed: it is written beside it and renamed into place.
    """
    from fintune.llm.model import adapter_base

    output = Path(output)
    if quantize not in QUANTIZE_CHOICES:
        raise UsageError(f"--quantize must be one of {', '.join(QUANTIZE_CHOICES)}, not {quantize!r}")
    if output.suffix != ".gguf":
        raise UsageError(f"{output}: the output must be a .gguf file")
    if output.exists() and not overwrite:
        raise OutputExistsError(f"{output} already exists; choose another output or allow overwriting")
    if adapter is None and model is None:
        raise UsageError("give --adapter (merged into its base) or --model (a plain Llama model)")
    name = model or (adapter_base(adapter) if adapter is not None else None)
    if not name:
        raise UsageError(f"{adapter}: the adapter does not name its base model; give --model")
    net, tokenizer = _load(Path(adapter) if adapter is not None else None, name)
    _check_llama(net.config)
    reference = probe_reference(net, tokenizer)
    merged = net.merge_and_unload() if adapter is not None else net
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{output.name}.tmp-", dir=output.parent) as tmp_name:
        tmp = Path(tmp_name)
        tokenizer.save_pretrained(tmp / "tokenizer")  # SpecialVocab reads the files
        staged = tmp / output.name
        write_gguf(merged, tmp / "tokenizer", staged, quantize, resolve_model(name))
        del merged, net  # the check loads a second copy
        check = check_gguf(reference, tokenizer, staged, quantize)
        check.size_bytes = staged.stat().st_size
        if not check.ok:
            raise GGUFMismatchError(
                f"the {quantize} GGUF answers differently from base + adapter: same next token on "
                f"{check.argmax_agreement:.1%} of probe positions, {check.decided_agreement:.1%} of decided ones "
                f"({check.requirement}); tokenizer {'same' if check.tokenizer_match else 'differs'}; nothing written"
            )
        os.replace(staged, output)  # same folder: atomic
    return check
