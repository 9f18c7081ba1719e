"""Run-config flags derived from the pydantic models, plus `--config FILE --run NAME [key=value ...]`.

Every field of a run config with a plain type becomes a flag, as TRL builds its CLI from its config
dataclasses: `lora_r` -> `--lora-r`, each validation alias -> another spelling (`--lr`, `--epochs`,
`--data`, `--model`), the type and choices from the annotation (a Literal gives the choices), the help
from the Field description. Lists and mappings (`tasks`, `target_modules`, `search_space`) are set in
the run config or as key=value. Precedence: defaults < run config < key=value < flags.
"""

from __future__ import annotations

import argparse
import types
from typing import Any, Literal, Union, get_args, get_origin, overload

from pydantic.fields import FieldInfo

from fintune.config.files import canonical_keys, load_run, parse_overrides
from fintune.config.schema import PIPELINES, EmbedRunConfig, LLMRunConfig, RunBase, RunConfig

FIELDS_DEST = "config_fields"  # Namespace attribute listing the derived flags' dests (= field names)


def add_run_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML or JSON file of named runs")
    parser.add_argument("--run", help="the run to use from --config")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="override any run setting")


def add_config_flags(parser: argparse.ArgumentParser, model: type[RunBase]) -> list[str]:
    """One flag per settable field of `model`, in a group of its own; returns the fields given flags."""
    group = parser.add_argument_group("run settings", "each overrides --config and key=value")
    names = []
    for name, info in model.model_fields.items():
        kind = flag_kind(info.annotation)
        if name == "pipeline" or kind is None:
            continue
        group.add_argument(*flag_names(name, info), dest=name, default=None, help=_help(info), **kind)
        names.append(name)
    parser.set_defaults(**{FIELDS_DEST: tuple(names)})
    return names


def flag_names(name: str, info: FieldInfo) -> list[str]:
    """`--field-name` first, then each alias (one-letter aliases such as `r` stay config-only)."""
    aliases = [a for a in getattr(info.validation_alias, "choices", []) if isinstance(a, str)]
    spellings = dict.fromkeys([name, *(a for a in aliases if len(a) > 1)])
    return ["--" + s.replace("_", "-") for s in spellings]


def flag_kind(annotation: Any) -> dict[str, Any] | None:
    """argparse keywords for a field's type, or None when a flag cannot express it."""
    inner = [a for a in get_args(annotation) if a is not type(None)] if _is_union(annotation) else [annotation]
    words = [a for a in inner if get_origin(a) is Literal]
    numbers = [a for a in inner if a in (int, float)]
    if len(inner) == 2 and len(words) == 1 and len(numbers) == 1:  # float | Literal["auto"]: a number or a word
        return {
            "type": _number_or(numbers[0], get_args(words[0])),
            "metavar": f"{numbers[0].__name__.upper()}|" + "|".join(map(str, get_args(words[0]))),
        }
    if len(inner) != 1:
        return None  # list[str] | str, dict | list: only in the run config
    kind = inner[0]
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction}
    if get_origin(kind) is list:
        item = flag_kind(get_args(kind)[0])
        return None if item is None or "action" in item else {**item, "nargs": "+"}
    if get_origin(kind) is Literal:
        choices = get_args(kind)
        return {"type": type(choices[0]), "choices": choices}
    if kind in (int, float):
        return {"type": kind, "metavar": kind.__name__.upper()}
    return {"type": kind} if kind is str else None


def _number_or(kind: type, words: tuple[Any, ...]) -> Any:
    def parse(text: str) -> Any:
        if text in words:
            return text
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number or one of {', '.join(map(str, words))}") from None

    parse.__name__ = kind.__name__  # argparse names the type in its error message
    return parse


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _help(info: FieldInfo) -> str:
    default = info.get_default(call_default_factory=True)
    if isinstance(default, bool):
        shown = f" (default {'on' if default else 'off'})"
    elif default in (None, [], {}):
        shown = ""
    else:
        shown = f" (default {default!r})" if isinstance(default, str) else f" (default {default})"
    return ((info.description or "") + shown).replace("%", "%%")  # argparse %-formats help


@overload
def run_config_from_args(args: argparse.Namespace, pipeline: Literal["embed"]) -> EmbedRunConfig: ...
@overload
def run_config_from_args(args: argparse.Namespace, pipeline: Literal["llm"]) -> LLMRunConfig: ...
def run_config_from_args(args: argparse.Namespace, pipeline: Literal["embed", "llm"]) -> RunConfig:
    """Defaults < run config < key=value overrides < explicit flags."""
    overrides = canonical_keys(parse_overrides(args.overrides), pipeline)
    for name in getattr(args, FIELDS_DEST, ()):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value
    config = load_run(args.config, args.run, overrides, pipeline=pipeline)
    # load_run(pipeline=...) validates with PIPELINES[pipeline] (or raises), so this always holds
    if not isinstance(config, EmbedRunConfig | LLMRunConfig) or config.pipeline != pipeline:
        raise TypeError(f"expected a '{pipeline}' run, got {type(config).__name__}")
    return config


def add_train_flags(parser: argparse.ArgumentParser, pipeline: str) -> None:
    """`--config --run key=value` and one flag per run setting of `pipeline`."""
    add_run_config_args(parser)
    add_config_flags(parser, PIPELINES[pipeline])
