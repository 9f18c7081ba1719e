"""Typed run configs, named-run files, key=value overrides and validation."""

from fintune.config.files import ConfigError, ConfigProblem, load_run, parse_overrides, validate_file
from fintune.config.schema import EmbedRunConfig, LLMRunConfig, RunConfig

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "EmbedRunConfig",
    "LLMRunConfig",
    "RunConfig",
    "load_run",
    "parse_overrides",
    "validate_file",
]
