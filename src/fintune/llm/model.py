"""Load a causal LM (alias, folder or hub id), optionally with a PEFT adapter, and its tokenizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from fintune.config.saved import read_llm_run
from fintune.errors import FintuneError, InputNotFoundError, UsageError
from fintune.models.device import pick_device, pick_dtype
from fintune.models.loading import LOAD_LOCK
from fintune.models.resolve import is_adapter, resolve_model

if TYPE_CHECKING:
    from peft import PeftModel


class AdapterMismatchError(FintuneError, ValueError):
    """The adapter was trained on another base model (its shapes or layer names do not fit)."""


def adapter_base(adapter: str | Path) -> str | None:
    """The base model an adapter folder was trained from (fintune's run config, else PEFT's own note)."""
    folder = Path(adapter)
    run = read_llm_run(folder)
    if run is not None:
        return run.base_model
    config = folder / "adapter_config.json"
    if not config.is_file():
        raise InputNotFoundError(f"{folder}: not an adapter folder (no adapter_config.json)")
    return json.loads(config.read_text()).get("base_model_name_or_path")


def tokenizer_folder(adapter: str | Path | None, base_folder: str) -> str:
    """The adapter's tokenizer (it carries the training chat template) when it saved one, else the base's."""
    if adapter and any((Path(adapter) / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        return str(adapter)
    return base_folder


def load_causal_lm(
    name: str | None = None,
    device: str | None = None,
    dtype: torch.dtype | None = None,
    adapter: str | Path | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Base model (name defaults to the adapter's base) plus adapter; the adapter folder's tokenizer wins."""
    if name is None:
        if adapter is None:
            raise UsageError("give a model or an adapter")
        name = adapter_base(adapter) or ""
    device = device or pick_device()
    with LOAD_LOCK:
        folder = str(resolve_model(name))
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder(adapter, folder))
        model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype or pick_dtype(device))
        model = model.to(device)  # type: ignore[arg-type]  # transformers types its wrapped .to() with an explicit self
        if adapter is not None:
            model = attach_adapter(model, adapter, name)
    model.eval()
    return model, tokenizer


def attach_adapter(model: PreTrainedModel, adapter: str | Path, base_name: str) -> PreTrainedModel:
    return cast(PreTrainedModel, peft_model(model, adapter, base_name))  # a PeftModel forwards to the model


def peft_model(model: PreTrainedModel, adapter: str | Path, base_name: str) -> PeftModel:
    """`model` with the adapter folder's weights attached; AdapterMismatchError when they do not fit it."""
    from peft import PeftModel

    if not is_adapter(adapter):
        raise InputNotFoundError(f"{adapter}: not an adapter folder (no adapter_config.json)")
    try:
        with LOAD_LOCK:
            return PeftModel.from_pretrained(model, str(adapter))
    except (RuntimeError, ValueError, KeyError) as exc:
        trained_on = adapter_base(adapter)
        raise AdapterMismatchError(
            f"{adapter}: adapter does not fit base model '{base_name}' (trained on '{trained_on}'): "
            f"{str(exc).splitlines()[0][:300]}"
        ) from exc
