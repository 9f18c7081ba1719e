"""Typed run configs, named-run files, key=value overrides, validation, and what output folders record."""

from fintune.config.files import ConfigError, ConfigProblem, load_run, parse_overrides, validate_file
from fintune.config.saved import ExportInfo, read_embed_run, read_export, read_llm_run, write_export, write_run
from fintune.config.schema import EmbedRunConfig, LLMRunConfig, RunConfig

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "EmbedRunConfig",
    "ExportInfo",
    "LLMRunConfig",
    "RunConfig",
    "load_run",
    "parse_overrides",
    "read_embed_run",
    "read_export",
    "read_llm_run",
    "validate_file",
    "write_export",
    "write_run",
]
