"""`fintune llm federate`: the ServerApp and ClientApp under Flower's simulation runtime on this machine.

Flower 1.42's simulation runtime runs each client in a Ray worker process; the server runs in a thread
of this process. On a small box: one CPU and one torch thread per client. Across machines the same apps
run under the deployment runtime (SuperLink + one SuperNode per client; see the README).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fintune.errors import FintuneError, OutputExistsError
from fintune.federated.config import FederatedRunConfig
from fintune.federated.server import RECORD_FILE, Outcome, make_server_app

log = logging.getLogger(__name__)
RAY_OBJECT_STORE_BYTES = 256 * 1024**2  # adapters are a few MB; Ray's default takes 30% of the memory


class FederatedRunError(FintuneError, RuntimeError):
    """The federated run did not finish (its completed rounds are in the work folder it names)."""


@dataclass
class FederatedResult:
    output: Path
    document: dict[str, Any]
    received_names: list[dict[str, list[str]]]  # per round: client -> array names the server received
    seconds: float

    @property
    def failures(self) -> list[dict[str, Any]]:
        return list(self.document.get("failures", []))


def backend_config(cfg: FederatedRunConfig) -> dict[str, Any]:
    """Ray resources: `client_cpus` per client, as many clients at once as the CPUs allow (at least one)."""
    cpus = max(cfg.client_cpus, min(float(os.cpu_count() or 1), cfg.client_cpus * len(cfg.clients)))
    return {
        "client_resources": {"num_cpus": cfg.client_cpus, "num_gpus": 0.0},
        "init_args": {
            "num_cpus": int(cpus),
            "include_dashboard": False,
            "object_store_memory": RAY_OBJECT_STORE_BYTES,
            "logging_level": "ERROR",
        },
    }


def federate(cfg: FederatedRunConfig, output: str | Path, *, overwrite: bool = False) -> FederatedResult:
    """Run `cfg` with Flower's simulation runtime; raises FederatedRunError when the server did not finish."""
    from flwr.simulation import run_simulation

    from fintune.federated.client import make_client_app

    output = Path(output)
    if output.exists() and not overwrite:
        raise OutputExistsError(f"{output} already exists; choose another output or pass --overwrite")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # CPU clients: silence Ray's GPU notice
    outcome = Outcome()
    start = time.perf_counter()
    run_simulation(
        server_app=make_server_app(cfg, output, overwrite, outcome),
        client_app=make_client_app(cfg),
        num_supernodes=len(cfg.clients),
        backend_config=backend_config(cfg),
    )
    seconds = time.perf_counter() - start
    if outcome.error is not None:
        raise FederatedRunError(
            f"the federated run failed: {outcome.error} (rounds completed so far: {_work_record(output)})"
        ) from outcome.error
    if not outcome.finished:
        raise FederatedRunError(
            f"the Flower run ended before the server finished (see the log; {_work_record(output)})"
        )
    return FederatedResult(output, outcome.document, outcome.received_names, seconds)


def _work_record(output: Path) -> str:
    from fintune.artifacts import work_dir

    path = work_dir(output) / RECORD_FILE
    return str(path) if path.is_file() else "none recorded"


def federate_from_files(
    config: str | None, run: str | None, overrides: list[str], output: str | None, *, overwrite: bool = False
) -> FederatedResult:
    """`fintune llm federate`: the named run of `config` with `key=value` overrides, into `output`."""
    cfg, folder = _resolve_run(config, run, overrides, output)
    return federate(cfg, folder, overwrite=overwrite)


def flower_app_from_files(
    config: str | None, run: str | None, overrides: list[str], output: str | None, app: str | Path
) -> Path:
    """`fintune llm federate --flower-app APP`: the same run as a Flower app folder for the deployment
    runtime (`flwr run APP`), whose ServerApp writes the adapter to `output` on the SuperLink's machine."""
    from fintune.federated.deploy import write_flower_app

    cfg, folder = _resolve_run(config, run, overrides, output)
    return write_flower_app(cfg, Path(folder), app)


def _resolve_run(
    config: str | None, run: str | None, overrides: list[str], output: str | None
) -> tuple[FederatedRunConfig, str]:
    from fintune.config.files import parse_overrides
    from fintune.errors import UsageError
    from fintune.federated.config import load_federated_run

    cfg = load_federated_run(config, run, parse_overrides(overrides))
    folder = output or cfg.output
    if not folder:
        raise UsageError("give --output (or output in the run config)")
    return cfg, folder
