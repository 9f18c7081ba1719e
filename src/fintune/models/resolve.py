"""Resolve a model name (alias, local path or hub id) to a local folder."""

from __future__ import annotations

import logging
from pathlib import Path

from fintune.errors import FintuneError
from fintune.models.gguf import cache_dir_for, convert_gguf
from fintune.models.registry import ALIASES

log = logging.getLogger(__name__)


class ModelNotFoundError(FintuneError, RuntimeError):
    """A model could not be found locally nor fetched."""


def _offline_aliases() -> str:
    ready = [a.name for a in ALIASES.values() if a.source_path() is not None]
    return ", ".join(ready) or "none installed (run `make install`)"


def resolve_model(name: str) -> Path:
    """Return a local folder for `name`: an alias, an existing path, or a Hugging Face hub id."""
    alias = ALIASES.get(name)
    if alias is not None:
        source = alias.source_path()
        if source is None:
            raise ModelNotFoundError(f"model alias '{name}' needs the package {alias.package}: {alias.install_hint()}")
        if alias.gguf:
            return convert_gguf(source, cache_dir_for(alias.name, source))
        return source
    path = Path(name).expanduser()
    if path.exists():
        if path.is_file() and path.suffix == ".gguf":
            return convert_gguf(path, cache_dir_for(path.stem, path))
        return path
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(f"model path '{name}' does not exist")
    return _from_hub(name)


def is_adapter(path: str | Path) -> bool:
    """A PEFT adapter folder (its config is what PeftModel.from_pretrained reads first)."""
    return (Path(path) / "adapter_config.json").is_file()


def model_key(name: str) -> str:
    """How a model is recorded (collections, exports): aliases and hub ids as given, folders as absolute paths."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def _from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not in the local hub cache: try the network below
        pass
    try:
        return Path(snapshot_download(repo_id))
    except Exception as exc:  # the hub raises several types for offline, missing and gated repos
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotFoundError(
            f"'{repo_id}' is no alias nor local path, and the Hugging Face hub cannot supply it ({reason}); "
            f"aliases that work offline: {_offline_aliases()}"
        ) from exc
