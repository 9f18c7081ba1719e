"""Batched greedy generation that stops by itself at the end-of-turn token."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class Generations:
    answers: list[str]
    new_tokens: list[int]  # tokens generated per answer (end-of-turn included)
    batch_seconds: list[float] = field(default_factory=list)


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """EOS plus the chat template's end-of-turn token when it differs (so answers stop at the turn's end)."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for token in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
        tid = tokenizer.convert_tokens_to_ids(token) if token in tokenizer.get_vocab() else None
        if tid is not None and tid not in ids:
            ids.append(tid)
    return ids


def generate_batched(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[list[int]],
    max_new_tokens: int = 32,
    batch_size: int = 16,
    progress: bool = True,
    banned: list[list[int]] | None = None,
) -> Generations:
    """Answers for tokenised prompts, in order. Prompts are sorted by length so that each batch pads
    little; left padding keeps every answer starting right after its prompt. `banned`: token sequences
    the answers may not contain (transformers' bad_words_ids)."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = stop_token_ids(tokenizer)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    result = Generations([""] * len(prompts), [0] * len(prompts))
    bar = tqdm(total=len(prompts), desc="generating", disable=not progress, unit="ex")
    for batch in _chunks(order, batch_size):
        width = max(len(prompts[i]) for i in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i])
            mask[row, width - len(prompts[i]) :] = 1
        start = time.perf_counter()
        with torch.inference_mode():
            # generate comes from GenerationMixin, which the causal-LM classes (and PeftModel) add: PreTrainedModel
            # lacks it, so mypy resolves it through nn.Module.__getattr__ (a Tensor or Module).
            out = model.generate(  # type: ignore[operator]
                input_ids=ids.to(model.device),
                attention_mask=mask.to(model.device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad_id,
                eos_token_id=stops,
                bad_words_ids=banned or None,
            )
        result.batch_seconds.append(time.perf_counter() - start)
        new = out[:, width:].cpu()
        for row, i in enumerate(batch):
            tokens = new[row].tolist()
            ends = [k for k, t in enumerate(tokens) if t in stops]
            tokens = tokens[: ends[0] + 1] if ends else tokens
            result.new_tokens[i] = len(tokens)
            # one sequence of ids decodes to one str; transformers annotates decode with the batched list[str] too
            result.answers[i] = cast(str, tokenizer.decode(tokens, skip_special_tokens=True)).strip()
        bar.update(len(batch))
    bar.close()
    return result


def continuation_probability(model: PreTrainedModel, prompt: list[int], continuation: list[int]) -> float:
    """P(continuation | prompt) under the model: the product of its tokens' probabilities, one forward pass."""
    ids = torch.tensor([prompt + continuation], device=model.device)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
    wanted = torch.tensor(continuation, device=logits.device)[:, None]
    return float(torch.log_softmax(logits, -1).gather(1, wanted).sum().exp())


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
