"""Causal LMs held in memory: one base model per process, shared by every LoRA adapter trained on it.

Adapters attach to the base with PEFT's `load_adapter` and are chosen per request with `set_adapter`
(or `disable_adapter` for the base itself). Generation takes the base's lock: one generation at a time
per base, since two would only compete for the same cores, and the active adapter is per model.

An adapter trained with a classification or regression head (`fintune llm train --head`) loads apart, on
its own sequence-classification copy of the base (`LoadedHead`): PEFT cannot hold a SEQ_CLS adapter on a
causal LM beside generation adapters. It answers `/v1/predict` and writes no text."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fintune.errors import UsageError
from fintune.models.loading import LOAD_LOCK
from fintune.models.resolve import model_key


@dataclass
class LoadedBase:
    key: str
    model: Any  # a PreTrainedModel, or a PeftModel once an adapter is attached
    tokenizer: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    adapters: dict[str, str] = field(default_factory=dict)  # adapter folder -> PEFT adapter name
    settings: dict[str, Any] = field(default_factory=dict)  # adapter folder ("" for none) -> InferenceSettings
    tokenizers: dict[str, Any] = field(default_factory=dict)  # an adapter's own tokenizer (its chat template)


@dataclass(frozen=True)
class Ready:
    """What a generation needs, with the adapter already active (valid while the lock is held)."""

    model: Any
    tokenizer: Any
    settings: Any  # fintune.llm.inference.InferenceSettings
    name: str  # what served: the adapter folder, else the base
    adapter_off: bool = False  # a PeftModel serving its base: generate inside `disable_adapter()`

    def context(self) -> Any:
        """Where generation runs: with the adapters switched off when the base itself answers."""
        return self.model.disable_adapter() if self.adapter_off else nullcontext()


@dataclass
class LoadedHead:
    """A head adapter ready to predict: the base with its LoRA and head, under its own lock."""

    model: Any
    tokenizer: Any
    spec: Any  # fintune.llm.heads.HeadSpec
    settings: Any  # fintune.llm.inference.InferenceSettings
    lock: threading.Lock = field(default_factory=threading.Lock)


class LLMPool:
    def __init__(self) -> None:
        self._bases: dict[str, LoadedBase] = {}
        self._heads: dict[tuple[str, str], LoadedHead] = {}  # (base override or "", adapter folder)
        self._lock = threading.Lock()

    def _base(self, name: str) -> LoadedBase:
        from fintune.llm.model import load_causal_lm

        key = model_key(name)
        with self._lock:
            if key not in self._bases:
                model, tokenizer = load_causal_lm(key)
                self._bases[key] = LoadedBase(key, model, tokenizer)
            return self._bases[key]

    def prepare(self, model: str | None, adapter: str | None) -> tuple[LoadedBase, str]:
        """Load the base (the adapter's own unless `model` names one) and attach the adapter; no lock held."""
        from fintune.llm.inference import inference_settings

        adapter_key = str(Path(adapter).resolve()) if adapter else ""
        settings = inference_settings(adapter_key or None)
        if adapter_key and settings.run.head != "generate":
            raise UsageError(
                f"{adapter}: a '{settings.run.head}' head adapter scores labels or values, it does not write text; "
                "ask it through /v1/predict"
            )
        from fintune.llm.model import adapter_base, tokenizer_folder
        from fintune.models.resolve import resolve_model

        default = (adapter_base(adapter_key) or settings.run.base_model) if adapter_key else settings.run.base_model
        base = self._base(model or default)
        with base.lock:
            base.settings.setdefault(adapter_key, settings)
            if adapter_key not in base.tokenizers:
                from transformers import AutoTokenizer

                folder = tokenizer_folder(adapter_key or None, str(resolve_model(base.key)))
                base.tokenizers[adapter_key] = AutoTokenizer.from_pretrained(folder)
            if adapter_key and adapter_key not in base.adapters:
                base.model = _attach(base, adapter_key)
        return base, adapter_key

    def acquire(self, model: str | None, adapter: str | None) -> tuple[Ready, threading.Lock]:
        """The model with `adapter` active (or none) and the base's lock, held: the caller releases it."""
        base, adapter_key = self.prepare(model, adapter)
        base.lock.acquire()
        try:
            if adapter_key:
                base.model.set_adapter(base.adapters[adapter_key])
            off = bool(base.adapters) and not adapter_key
            tokenizer, settings = base.tokenizers[adapter_key], base.settings[adapter_key]
            return Ready(base.model, tokenizer, settings, adapter_key or base.key, off), base.lock
        except BaseException:
            base.lock.release()
            raise

    @contextmanager
    def use(self, model: str | None, adapter: str | None) -> Iterator[Ready]:
        """The model with `adapter` active (or none), under the base's lock."""
        ready, lock = self.acquire(model, adapter)
        try:
            with ready.context():
                yield ready
        finally:
            lock.release()

    def head(self, model: str | None, adapter: str) -> LoadedHead:
        """A head adapter's model, loaded on first use (on `model` when it names the base's copy)."""
        from fintune.llm.heads import load_head_model
        from fintune.llm.inference import inference_settings

        key = (model_key(model) if model else "", str(Path(adapter).resolve()))
        with self._lock:
            if key not in self._heads:
                with LOAD_LOCK:
                    net, tokenizer, spec = load_head_model(key[1], base_model=key[0] or None)
                self._heads[key] = LoadedHead(net, tokenizer, spec, inference_settings(key[1]))
            return self._heads[key]

    def load(self, model: str | None, adapter: str | None) -> None:
        """Load what a version serves: a head adapter's model, else the base with the adapter attached."""
        from fintune.llm.inference import head_of

        if head_of(adapter) != "generate":
            assert adapter is not None
            self.head(model, adapter)
        else:
            self.prepare(model, adapter)

    def loaded(self) -> list[str]:
        heads = [adapter for _, adapter in self._heads]
        return [a for b in self._bases.values() for a in (b.key, *b.adapters)] + heads


def _attach(base: LoadedBase, adapter: str) -> Any:
    """Attach one more adapter (the first one wraps the base in a PeftModel)."""
    from fintune.llm.model import peft_model

    name = f"a{len(base.adapters)}"
    if not base.adapters:
        model = peft_model(base.model, adapter, base.key)  # its adapter is PEFT's "default"
        name = "default"
    else:
        model = base.model
        with LOAD_LOCK:
            model.load_adapter(adapter, adapter_name=name)
    model.eval()
    base.adapters[adapter] = name
    return model
