"""What fintune records inside its output folders, written and read back as typed models.

`fintune_run.json` (tuned embedding models, LLM adapters) is the run config the folder was trained with;
`fintune_export.json` (ONNX exports) describes the exported graph. Every reader goes through here, so a
key a folder lacks takes the schema's default, never a reader's own guess.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fintune.config.files import ConfigError, ConfigProblem, build_run, canonical_keys, own_keys
from fintune.config.schema import RECORDED, EmbedRunConfig, LLMRunConfig, RunBase

log = logging.getLogger(__name__)

RUN_FILE = "fintune_run.json"
EXPORT_FILE = "fintune_export.json"
ONNX_MAX_SEQ_LENGTH = 512  # sentence-transformers' usual limit, for an export whose model recorded none

Run = TypeVar("Run", bound=RunBase)


class ExportInfo(BaseModel):
    """`fintune_export.json`: how an ONNX export was made and what it produces."""

    model_config = ConfigDict(extra="ignore")  # a newer fintune may record more; the graph still runs

    format: Literal["onnx"] = "onnx"
    source_model: str  # model_key of the PyTorch model it came from
    quantize: Literal["int8"] | None = None
    dimension: int = Field(ge=1)
    max_seq_length: int = ONNX_MAX_SEQ_LENGTH
    prompts: dict[str, str] = Field(default_factory=dict)  # query/document prefixes of the source model
    normalized: bool = True
    opset: int | None = None
    fintune_version: str | None = None
    check: dict[str, Any] | None = None  # probe texts and the worst cosine to the PyTorch vectors

    @field_validator("max_seq_length", mode="before")
    @classmethod
    def _recorded_limit(cls, value: Any) -> Any:
        return ONNX_MAX_SEQ_LENGTH if value is None else value


def write_run(folder: str | Path, config: RunBase) -> Path:
    path = Path(folder) / RUN_FILE
    path.write_text(json.dumps(config.model_dump(mode="json"), indent=2), encoding="utf-8")
    return path


def read_run(folder: str | Path, kind: type[Run]) -> Run | None:
    """The run config recorded in `folder`, or None when it has none (a plain model or adapter).

    Keys this version does not know (a folder from another fintune version) are dropped with a warning;
    a run of the other pipeline or an invalid value is a ConfigError naming the file."""
    path = Path(folder) / RUN_FILE
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError([ConfigProblem(path, exc.lineno, "", f"bad JSON: {exc.msg}")]) from None
    pipeline = kind.model_fields["pipeline"].default
    if not isinstance(raw, dict) or raw.get("pipeline", pipeline) != pipeline:
        found = raw.get("pipeline") if isinstance(raw, dict) else type(raw).__name__
        raise ConfigError([ConfigProblem(path, None, "", f"records a '{found}' run, not '{pipeline}'")])
    unknown = sorted(set(raw) - own_keys(pipeline))
    if unknown:
        log.warning("%s: ignoring keys this fintune version does not know: %s", path, ", ".join(unknown))
    body = canonical_keys({k: v for k, v in raw.items() if k not in unknown}, pipeline) | {"pipeline": pipeline}
    run = build_run("", body, path, _node(text), context=RECORDED)
    if not isinstance(run, kind):  # cannot happen: the body names kind's pipeline, so build_run validated it as kind
        raise ConfigError([ConfigProblem(path, None, "", f"read as {type(run).__name__}, not {kind.__name__}")])
    return run


def _node(text: str) -> yaml.Node | None:
    """The YAML node tree of a JSON text, for the line numbers of problems (None if YAML cannot read it)."""
    try:
        return yaml.compose(text)
    except yaml.YAMLError:
        return None


def read_llm_run(folder: str | Path) -> LLMRunConfig | None:
    return read_run(folder, LLMRunConfig)


def read_embed_run(folder: str | Path) -> EmbedRunConfig | None:
    return read_run(folder, EmbedRunConfig)


def write_export(folder: str | Path, info: ExportInfo) -> Path:
    path = Path(folder) / EXPORT_FILE
    path.write_text(info.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def read_export(folder: str | Path) -> ExportInfo | None:
    """The export description in `folder`, or None when the folder is not a fintune export."""
    path = Path(folder) / EXPORT_FILE
    if not path.is_file():
        return None
    try:
        return ExportInfo.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        problems = [ConfigProblem(path, None, ".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()]
        raise ConfigError(problems) from None
