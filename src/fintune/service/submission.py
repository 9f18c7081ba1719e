"""From a task request to a validated run config: the kind's pydantic config, paths confined to the data roots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fintune.config.files import ConfigError, ConfigProblem, load_run
from fintune.service.methods import FineTuningMethod
from fintune.service.models import TaskCreate
from fintune.service.paths import PathRefused, confine

RESERVED = ("run_file", "run")  # keys of a request's `config` that name a run file and a run in it


def build_config(
    method: FineTuningMethod, body: TaskCreate, roots: list[Path]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The validated config (as JSON) and the method's service options taken from `body.config`.

    Raises ConfigError (every problem, with its field path) or PathRefused."""
    options = dict(body.config)
    run_file, run = options.pop("run_file", None), options.pop("run", None)
    service = {key: options.pop(key) for key in method.service_options if key in options}
    _check_service_options(service)
    if "output" in options or "output_dir" in options:
        raise PathRefused("config.output: output folders are chosen by the server; leave it out")
    if body.data is not None:
        options[method.data_field] = body.data
    if body.base_model is not None:
        options[method.model_field] = body.base_model
    if method.pipeline is not None:
        file = confine(str(run_file), roots, "config.run_file") if run_file else None
        config = load_run(file, str(run) if run else None, options, pipeline=method.pipeline)
    else:
        if run_file:
            raise PathRefused(f"config.run_file: method '{method.kind}' takes inline options only")
        config = _validate_plugin(method, options)
    if getattr(config, "output", None):
        raise PathRefused("config.output: output folders are chosen by the server; remove it from the run file")
    updates = {}
    for field in method.path_fields:
        value = getattr(config, field, None)
        if value:
            updates[field] = str(confine(str(value), roots, f"config.{field}"))
    config = config.model_copy(update=updates)
    return config.model_dump(mode="json"), service


def _check_service_options(service: dict[str, Any]) -> None:
    problems = [
        ConfigProblem(None, None, key, f"must be a whole number >= 1 (got {steps!r})")
        for key, steps in service.items()
        if key in ("max_steps", "save_steps")
        and steps is not None
        and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1)
    ]
    if problems:
        raise ConfigError(problems)


def _validate_plugin(method: FineTuningMethod, options: dict[str, Any]) -> Any:
    try:
        return method.config_class.model_validate(options)
    except ValidationError as exc:
        problems = [ConfigProblem(None, None, ".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()]
        raise ConfigError(problems) from None


def problem_list(error: ConfigError, run: str | None = None) -> list[dict[str, Any]]:
    """A ConfigError as FastAPI-style 422 details: loc from the request body down to the field (`run`: the
    run named in the request; without one, load_run calls the inline options run "run")."""
    out = []
    for problem in error.problems:
        where = [part for part in problem.where.split(".") if part] if problem.where else []
        if where and run is None and where[0] == "run":
            where = where[1:]
        place = f"{problem.file}:{problem.line}: " if problem.file and problem.line else ""
        out.append({"loc": ["body", "config", *where], "msg": place + problem.message, "type": "value_error"})
    return out
