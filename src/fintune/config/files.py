"""Named-run files (YAML or JSON), key=value overrides, and validation that reports every problem."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fintune.config.schema import CONTRADICTION_SEP, PIPELINES, RunBase
from fintune.errors import FintuneError

DEFAULTS_KEY = "defaults"  # optional top-level mapping merged under every run


@dataclass(frozen=True)
class ConfigProblem:
    file: Path | None
    line: int | None
    where: str  # dotted path, e.g. "sentiment_r8.lora_r"
    message: str

    def __str__(self) -> str:
        place = f"{self.file}:{self.line}: " if self.file and self.line else f"{self.file}: " if self.file else ""
        return f"{place}{self.where}: {self.message}" if self.where else f"{place}{self.message}"


class ConfigError(FintuneError, ValueError):
    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("invalid run config:\n" + "\n".join(f"  {p}" for p in problems))


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values parse as JSON/YAML scalars (numbers, booleans, lists), dots nest."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError([ConfigProblem(None, None, "", f"override '{item}' is not key=value")])
        target = out
        *parents, leaf = key.strip().split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = _scalar(raw)
    return out


def _scalar(raw: str) -> Any:
    for parse in (int, float):
        try:
            return parse(raw)
        except ValueError:
            pass
    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return raw


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = (
            _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def read_runs(path: str | Path) -> tuple[dict[str, dict[str, Any]], yaml.Node | None]:
    """All runs of a file (with `defaults` merged in) and its YAML node tree for line numbers."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([ConfigProblem(path, None, "", "no such file")])
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        node = yaml.compose(text)
    except json.JSONDecodeError as exc:
        raise ConfigError([ConfigProblem(path, exc.lineno, "", f"bad JSON: {exc.msg}")]) from None
    except yaml.YAMLError as exc:
        mark = exc.problem_mark if isinstance(exc, yaml.MarkedYAMLError) else None
        line = mark.line + 1 if mark else None
        raise ConfigError([ConfigProblem(path, line, "", f"bad YAML: {getattr(exc, 'problem', exc)}")]) from None
    if not isinstance(data, dict) or not data:
        raise ConfigError([ConfigProblem(path, 1, "", "expected a mapping of run names to run settings")])
    defaults = data.pop(DEFAULTS_KEY, {}) or {}
    runs: dict[str, dict[str, Any]] = {}
    problems = []
    for name, body in data.items():
        if not isinstance(body, dict):
            problems.append(ConfigProblem(path, _line(node, [name]), str(name), "a run must be a mapping"))
            continue
        runs[str(name)] = _merge(defaults, body)
    if problems:
        raise ConfigError(problems)
    return runs, node


def _line(node: yaml.Node | None, keys: list[Any]) -> int | None:
    """1-based line of the value at `keys` in a composed YAML/JSON document, as deep as it exists."""
    line = None
    for key in keys:
        if isinstance(node, yaml.SequenceNode) and str(key).isdigit() and int(key) < len(node.value):
            node = node.value[int(key)]  # a list item (clients.0): its own line
            line = node.start_mark.line + 1
            continue
        if not isinstance(node, yaml.MappingNode):
            break
        for key_node, value_node in node.value:
            if key_node.value == str(key):
                line, node = key_node.start_mark.line + 1, value_node
                break
        else:
            break
    return line


def infer_pipeline(run: dict[str, Any]) -> str | None:
    if "pipeline" in run:
        return str(run["pipeline"])
    keys = set(run)
    llm_only = own_keys("llm") - own_keys("embed")
    embed_only = own_keys("embed") - own_keys("llm")
    if keys & llm_only and not keys & embed_only:
        return "llm"
    if keys & embed_only and not keys & llm_only:
        return "embed"
    return None


def own_keys(pipeline: str) -> set[str]:
    """Every key a run of `pipeline` accepts: field names and their aliases."""
    keys = set()
    for name, info in PIPELINES[pipeline].model_fields.items():
        keys.add(name)
        if info.validation_alias is not None:
            keys.update(getattr(info.validation_alias, "choices", []))
    return keys


def canonical_keys(run: dict[str, Any], pipeline: str) -> dict[str, Any]:
    names = {}
    for name, info in PIPELINES[pipeline].model_fields.items():
        for alias in getattr(info.validation_alias, "choices", []):
            names[alias] = name
    return {names.get(key, key): value for key, value in run.items()}


def build_run(
    name: str,
    run: dict[str, Any],
    file: Path | None = None,
    node: yaml.Node | None = None,
    context: dict[str, Any] | None = None,
) -> RunBase:
    """Validate one run; every problem (with its file line where known) in one ConfigError.

    `name` is the run's key in the file, "" for a file that holds one run at its top level."""
    pipeline = infer_pipeline(run)
    if pipeline not in PIPELINES:
        why = f"unknown pipeline '{pipeline}'" if pipeline else "cannot tell the pipeline from the keys"
        raise ConfigError([ConfigProblem(file, _line(node, [name]), name, f"{why}: set pipeline: embed or llm")])
    cls = PIPELINES[pipeline]
    try:
        return cls.model_validate(run, context=context)
    except ValidationError as exc:
        problems = [p for err in exc.errors() for p in _problems(cls, name, run, err, file, node)]
        raise ConfigError(problems) from None


def _problems(
    cls: type[RunBase], name: str, run: dict[str, Any], err: Any, file: Path | None, node: yaml.Node | None
) -> list[ConfigProblem]:
    loc = [str(part) for part in err["loc"]]
    if err["type"] == "value_error" and not loc:
        # Contradictions between options: one problem each, placed at the first option it names.
        out = []
        for message in err["msg"].removeprefix("Value error, ").split(CONTRADICTION_SEP):
            named = [key for key in run if re.search(rf"\b{re.escape(key)}\b", message)]
            keys = [k for k in (name, *named[:1]) if k]
            out.append(ConfigProblem(file, _line(node, keys), ".".join(keys), message))
        return out
    return [_problem(cls, name, loc, err, file, node)]


def _problem(
    cls: type[RunBase], name: str, loc: list[str], err: Any, file: Path | None, node: yaml.Node | None
) -> ConfigProblem:
    keys = [k for k in (name, *loc) if k]
    where = ".".join(keys)
    line = _line(node, keys)
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        options = sorted(own_keys(cls.model_fields["pipeline"].default))
        close = difflib.get_close_matches(loc[-1], options, n=1, cutoff=0.6)
        message = f"unknown key '{loc[-1]}'" + (f" (did you mean '{close[0]}'?)" if close else "")
    elif err["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    elif "input" in err and not isinstance(err["input"], dict):
        message = f"{message} (got {err['input']!r})"
    return ConfigProblem(file, line, where, message)


def validate_file(path: str | Path, run: str | None = None) -> tuple[list[str], list[ConfigProblem]]:
    """Names of the runs checked and every problem found in them."""
    path = Path(path)
    try:
        runs, node = read_runs(path)
    except ConfigError as exc:
        return [], exc.problems
    if run is not None and run not in runs:
        return [], [_unknown_run(path, run, runs)]
    names = [run] if run else list(runs)
    problems: list[ConfigProblem] = []
    for name in names:
        try:
            build_run(name, runs[name], path, node)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return names, problems


def _unknown_run(path: Path, run: str, runs: dict[str, Any]) -> ConfigProblem:
    close = difflib.get_close_matches(run, list(runs), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigProblem(path, None, run, f"no run named '{run}'{hint}; runs: {', '.join(runs)}")


def load_run(
    path: str | Path | None,
    run: str | None,
    overrides: dict[str, Any] | None = None,
    pipeline: str | None = None,
) -> RunBase:
    """The run `run` of `path` (or the defaults when no file), with overrides applied on top."""
    body: dict[str, Any] = {}
    node = None
    file = Path(path) if path else None
    if file is not None:
        runs, node = read_runs(file)
        if run is None:
            if len(runs) != 1:
                raise ConfigError([ConfigProblem(file, None, "", f"choose a run with --run: {', '.join(runs)}")])
            run = next(iter(runs))
        if run not in runs:
            raise ConfigError([_unknown_run(file, run, runs)])
        body = runs[run]
    overrides = overrides or {}
    kind = pipeline or infer_pipeline(_merge(body, overrides))
    if kind in PIPELINES:  # spell aliases canonically first, so an override `lr` beats a file's `learning_rate`
        body, overrides = canonical_keys(body, kind), canonical_keys(overrides, kind)
    body = _merge(body, overrides)
    if pipeline is not None:
        declared = body.get("pipeline", pipeline)
        if declared != pipeline:
            raise ConfigError(
                [ConfigProblem(file, None, run or "", f"run is for pipeline '{declared}', not '{pipeline}'")]
            )
        body["pipeline"] = pipeline
    return build_run(run or "run", body, file, node)
