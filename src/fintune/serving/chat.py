"""Chat completions: OpenAI messages through fintune's prompt renderer, greedy or sampled generation.

The prompt is rendered as `fintune llm generate` renders it (the adapter's training system prompt unless
the messages bring their own), so a greedy answer here equals the offline one for the same model."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import torch

from fintune.errors import UsageError
from fintune.serving.llms import Ready


@dataclass(frozen=True)
class Sampling:
    max_tokens: int = 256
    temperature: float | None = None  # None or 0: greedy, as the offline commands
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return not self.temperature


@dataclass
class Completion:
    text: str
    finish_reason: str  # "stop" (end of turn or a stop string) or "length"
    prompt_tokens: int
    completion_tokens: int


def prompt_ids(ready: Ready, messages: list[dict[str, str]], max_tokens: int) -> list[int]:
    """Token ids of the conversation: system messages replace the system prompt, the last user turn is
    the prompt and earlier turns its history."""
    from fintune.llm.encode import encode_prompt
    from fintune.llm.prompts import Example

    if not messages or messages[-1]["role"] != "user":
        raise UsageError("messages: the last message must have role 'user'")
    systems = [m["content"] for m in messages if m["role"] == "system"]
    system_prompt = "\n".join(systems) if systems else ready.settings.system_prompt
    history = tuple({"role": m["role"], "content": m["content"]} for m in messages[:-1] if m["role"] != "system")
    example = Example(messages[-1]["content"], "", history=history)
    budget = ready.settings.max_length - max_tokens
    if budget < 8:
        raise UsageError(f"max_tokens {max_tokens} leaves no room for the prompt ({ready.settings.max_length} tokens)")
    return encode_prompt(ready.tokenizer, example, system_prompt, budget)[0]


def _generate_kwargs(ready: Ready, ids: list[int], sampling: Sampling) -> dict[str, Any]:
    from fintune.llm.generate import stop_token_ids

    tokenizer = ready.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    kwargs: dict[str, Any] = {
        "input_ids": torch.tensor([ids], device=ready.model.device),
        "attention_mask": torch.ones((1, len(ids)), dtype=torch.long, device=ready.model.device),
        "max_new_tokens": sampling.max_tokens,
        "pad_token_id": pad,
        "eos_token_id": stop_token_ids(tokenizer),
        "do_sample": not sampling.greedy,
    }
    if not sampling.greedy:
        kwargs["temperature"] = sampling.temperature
        kwargs["top_p"] = sampling.top_p if sampling.top_p is not None else 1.0
        kwargs["top_k"] = 0  # OpenAI's sampling has no top-k; transformers defaults to 50
    else:  # the model's generation_config may carry sampling defaults: greedy ignores them, quietly
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if sampling.stop:
        kwargs["stop_strings"] = list(sampling.stop)
        kwargs["tokenizer"] = tokenizer
    if sampling.seed is not None:
        torch.manual_seed(sampling.seed)
    return kwargs


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """`text` up to the first stop string (OpenAI leaves the stop string out)."""
    hits = [text.index(s) for s in stop if s and s in text]
    return (text[: min(hits)], True) if hits else (text, False)


def complete(ready: Ready, ids: list[int], sampling: Sampling) -> Completion:
    """The whole answer at once (call with the base's lock held: inside `LLMPool.use`)."""
    from fintune.llm.generate import stop_token_ids

    with torch.inference_mode():  # the caller's `LLMPool.use` has switched adapters as asked
        out = ready.model.generate(**_generate_kwargs(ready, ids, sampling))
    tokens = out[0, len(ids) :].tolist()
    stops = stop_token_ids(ready.tokenizer)
    ends = [k for k, t in enumerate(tokens) if t in stops]
    tokens = tokens[: ends[0] + 1] if ends else tokens
    text = cast(str, ready.tokenizer.decode(tokens, skip_special_tokens=True)).strip()
    text, stopped = cut_at_stop(text, sampling.stop)
    text = text.rstrip()  # trimmed as a whole answer is (and as the stream is)
    finish = "stop" if ends or stopped else "length"
    return Completion(text, finish, len(ids), len(tokens))


class StreamedText:
    """Text pieces as they are generated, trimmed as `complete` trims: no leading or trailing whitespace
    (held back until more text follows) and nothing from a stop string on."""

    def __init__(self, stop: tuple[str, ...]):
        self.stop = stop
        self.sent = ""  # text already given out
        self.seen = ""  # all text so far, stripped at the start
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self.seen = (self.seen + piece).lstrip()
        text, self.stopped = cut_at_stop(self.seen, self.stop)
        if not self.stopped:
            text = text.rstrip()
            # a stop string may be starting at the end: keep its possible beginning back
            hold = max((k for s in self.stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
            text = text[: len(text) - hold] if hold else text
        else:
            text = text.rstrip()
        out, self.sent = text[len(self.sent) :], text if len(text) > len(self.sent) else self.sent
        return out


def stream(ready: Ready, ids: list[int], sampling: Sampling, lock: threading.Lock | None = None) -> Iterator[str]:
    """Text pieces while a background thread generates (it holds `lock`, if given, until it ends)."""
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(ready.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with torch.inference_mode(), ready.context():
                ready.model.generate(**_generate_kwargs(ready, ids, sampling), streamer=streamer)
        except BaseException as exc:  # surfaced to the reader below; the streamer must still end
            failure.append(exc)
            streamer.end()
        finally:
            if lock is not None:
                lock.release()

    threading.Thread(target=run, daemon=True, name="fintune-generate").start()
    trimmer = StreamedText(sampling.stop)
    for piece in streamer:
        out = trimmer.feed(piece)
        if out:
            yield out
    if failure:
        raise failure[0]
