"""The Flower ServerApp: seeded global adapter, LoraStrategy rounds, server-side validation, atomic output.

The output is an ordinary PEFT adapter folder (what `fintune llm eval|generate|merge` take) plus
`fintune_federated.json`: one record per round with each client's validation metrics (server-side on the
client task's validation data; under fedsa the personalised adapters' own scores), the example-weighted
training loss, bytes sent and received, and wall time. The records are also rewritten beside the output
after every round, so a run that fails later keeps the rounds it completed.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp

from fintune.artifacts import atomic_dir, work_dir
from fintune.config.saved import write_run
from fintune.federated import local
from fintune.federated.config import FederatedRunConfig
from fintune.federated.records import from_record, run_config, to_record
from fintune.federated.strategy import LoraStrategy, identify_nodes
from fintune.llm.data import evaluation_examples, file_examples, sample_examples
from fintune.llm.prompts import Example

log = logging.getLogger(__name__)
RECORD_FILE = "fintune_federated.json"
OUTPUT_KEY = "fintune-output"  # run_config key of the output folder (deployment runtime)


@dataclass
class Outcome:
    """What the ServerApp hands back to an in-process caller (it runs in a Flower thread)."""

    finished: bool = False
    error: BaseException | None = None
    document: dict[str, Any] = field(default_factory=dict)
    received_names: list[dict[str, list[str]]] = field(default_factory=list)


def make_server_app(
    cfg: FederatedRunConfig | None = None,
    output: str | Path | None = None,
    overwrite: bool = False,
    outcome: Outcome | None = None,
) -> ServerApp:
    """A ServerApp for `cfg` and `output` (simulation), or one reading both from Flower's run config."""
    app = ServerApp()
    sink = outcome if outcome is not None else Outcome()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        try:
            run = run_config(cfg, context)
            folder = output or context.run_config.get(OUTPUT_KEY) or run.output
            if not folder:
                raise ValueError(f"no output folder: set '{OUTPUT_KEY}' in the run config")
            run_server(grid, run, Path(str(folder)), overwrite, sink)
        except BaseException as exc:
            sink.error = exc
            raise

    return app


ValidationSets = dict[str, tuple[str, list[Example], str]]  # client -> (source, examples, scoring family)


def validation_sets(cfg: FederatedRunConfig) -> ValidationSets:
    """Each client task's validation examples, read by the server (never the clients' training files)."""
    out: ValidationSets = {}
    for spec in cfg.clients:
        if spec.task:
            chosen = evaluation_examples(spec.task, spec.eval_file(), cfg.llm.seed, cfg.eval_limit)
        elif spec.eval_data:
            chosen = file_examples(spec.eval_data)
        else:
            log.warning("client %s: no task and no eval_data, so no server-side validation", spec.name)
            continue
        out[spec.name] = (chosen.source, sample_examples(chosen.examples, cfg.eval_limit, cfg.llm.seed), chosen.family)
    return out


def score(am: local.AdapterModel, cfg: FederatedRunConfig, sets: ValidationSets) -> dict[str, dict[str, float]]:
    """Each client task's validation metrics by generation."""
    by_source: dict[str, dict[str, float]] = {}  # clients of one task share its validation set: score it once
    for source, examples, family in sets.values():
        if source not in by_source:
            by_source[source] = local.score_examples(am, cfg.llm, examples, family)
    return {name: by_source[source] for name, (source, _, _) in sets.items()}


def run_server(grid: Grid, cfg: FederatedRunConfig, output: Path, overwrite: bool, outcome: Outcome) -> None:
    # As the clients: more threads than free cores make torch's thread pool far slower on a busy box.
    torch.set_num_threads(cfg.torch_threads)
    started = time.perf_counter()
    sets = validation_sets(cfg)  # before the model: bad validation data fail in seconds
    am = local.adapter_model(cfg.llm)
    initial = local.get_arrays(am.model)
    work = work_dir(output)
    work.mkdir(parents=True, exist_ok=True)
    personal = work / "clients"
    document: dict[str, Any] = {
        "aggregation": cfg.aggregation,
        "clients": [c.name for c in cfg.clients],
        "run": cfg.model_dump(mode="json"),
        "rounds": [],
    }

    def on_round(record: dict[str, Any]) -> None:
        document["rounds"].append(record)
        (work / RECORD_FILE).write_text(json.dumps(document, indent=2))
        log.info("round %d: %s", record["round"], _summary(record))

    node_names = identify_nodes(grid, len(cfg.clients), cfg.timeout_s)
    fedsa = cfg.aggregation == "fedsa"
    strategy = LoraStrategy(cfg, node_names, on_round, personal_dir=str(personal.resolve()) if fedsa else "")

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round == 0 and not cfg.eval_base:
            return None
        validation: dict[str, dict[str, float]] = {}
        if server_round == 0 or not fedsa:  # fedsa's global adapter has no B: its clients score their own
            local.set_arrays(am.model, from_record(arrays))
            validation = score(am, cfg, sets)
        record = strategy.finish_round(server_round, validation)
        flat = {f"{c}.{k}": v for c, m in record["validation"].items() for k, v in m.items() if isinstance(v, float)}
        return MetricRecord(flat)  # type: ignore[arg-type]  # Flower types values as a union

    strategy.start(grid, to_record(initial), num_rounds=cfg.rounds, timeout=cfg.timeout_s, evaluate_fn=evaluate)
    local.set_arrays(am.model, strategy.global_arrays)
    document["failures"] = [{"round": r["round"], **f} for r in document["rounds"] for f in r.get("failures", [])]
    document["wall_seconds"] = time.perf_counter() - started
    with atomic_dir(output, overwrite=overwrite) as tmp:
        am.model.save_pretrained(str(tmp))
        am.tokenizer.save_pretrained(str(tmp))
        write_run(tmp, cfg.llm)
        if personal.is_dir():  # fedsa on one machine: the clients wrote their adapters beside the output
            shutil.move(str(personal), str(tmp / "clients"))
        (tmp / RECORD_FILE).write_text(json.dumps(document, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    outcome.document = document
    outcome.received_names = strategy.received_names
    outcome.finished = True


def _summary(record: dict[str, Any]) -> str:
    parts = [f"train loss {record['train_loss']:.4f}"] if "train_loss" in record else []
    for name, metrics in record.get("validation", {}).items():
        if "accuracy" in metrics:
            parts.append(f"{name} accuracy {metrics['accuracy']:.3f}")
    parts += [f"{f['client']} FAILED" for f in record.get("failures", [])]
    return ", ".join(parts) or "no metrics"


app = make_server_app()  # the deployment runtime's ServerApp (config and output from Flower's run config)
