"""The federated proof: base, each client alone, centralised, fedavg, ffa, fedsa on the same budget.

Run `--run` of configs/federated.yaml (default `sentiment_clients`: clients fpb and tfns, each on its own
train split and label set; `sentiment_shared_labels`: the same clients on the `sentiment` task's one label set):
- federated (fedavg, ffa, fedsa): `--rounds` R rounds of `--local-steps` L steps per client;
- local-only: each client trains alone for R·L steps (the same steps and examples it trains federated);
- centralised: both clients' data pooled, 2·R·L steps (the federation's total), mixed as the records come
  (`central`, proportional) or with each task the same share as in the federation (`central_balanced`);
all with the run's LoRA recipe, a constant learning rate and no warmup (as a federated round trains),
and the seed given. Every adapter is scored by `fintune llm eval --task T --limit N` on the dev split of
each client's task (fedsa: each client's personalised adapter on its own task). Output: one JSON line
per (arm, seed, task) in `--output`/results.jsonl and a markdown table on stdout.

    .venv/bin/python benchmarks/federated_proof.py --rounds 5 --local-steps 10 --limit 200 --seeds 0 [1 2]

`--train-records N` is the data-scarce case: each client holds only a seeded sample of N records of its
train split (a new sample per seed, the same for every arm of that seed), so local-only repeats its few
records while a federation sees every client's. For a run whose clients share one task
(`sentiment_shared_labels`), `central` pools the clients' records (the same samples) into one file of that
task; `central_balanced` is for runs whose clients train different tasks.

    .venv/bin/python benchmarks/federated_proof.py --run sentiment_shared_labels --rounds 8 --local-steps 3 \
        --train-records 64 --limit 200 --seeds 0 1 2 --arms local central fedavg ffa fedsa
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import llm_eval, machine_line

CONFIG = "configs/federated.yaml"
CLIENTS = ("fpb", "tfns")  # the client names of both runs
ARMS = ("base", "local", "central", "central_balanced", "fedavg", "ffa", "fedsa")


def accuracy_f1(adapter: Path | None, task: str, limit: int, out: Path, data: str | None = None) -> dict[str, float]:
    metrics = llm_eval(adapter, task, out, limit, data)
    return {"accuracy": metrics["accuracy"], "f1_weighted": metrics["f1_weighted"]}


def score_clients(cfg: Any, adapter_of: Any, limit: int, folder: Path) -> dict[str, dict[str, float]]:
    """Each client's adapter (`adapter_of(client)`, None: the base model) on its own validation data."""
    return {c.name: accuracy_f1(adapter_of(c), c.task, limit, folder / f"{c.name}.json", c.eval_file())
            for c in cfg.clients}  # fmt: skip


def federated_config(run: str, rounds: int, local_steps: int, seed: int, aggregation: str) -> Any:
    from fintune.config.files import parse_overrides
    from fintune.federated.config import load_federated_run

    overrides = parse_overrides([f"rounds={rounds}", f"local_steps={local_steps}", f"aggregation={aggregation}",
                                 "eval_limit=16", "eval_base=false", f"llm.seed={seed}"])  # fmt: skip
    return load_federated_run(CONFIG, run, overrides)


def own_data(cfg: Any, records: int, seed: int, folder: Path) -> None:
    """Give each client a seeded sample of `records` records of its train split (a file in `folder`)."""
    from fintune.data.tasks import get_task
    from fintune.llm.data import sample_examples

    folder.mkdir(parents=True, exist_ok=True)
    for client in cfg.clients:
        rows = get_task(client.source or client.task).path("train").read_text(encoding="utf-8").splitlines()
        client.data = _write(folder / f"{client.name}-train.jsonl", sample_examples(rows, records, seed))


def pooled_data(cfg: Any, folder: Path) -> str:
    """The clients' training records in one file of their shared task's fields (the centralised arm)."""
    from fintune.data.loading import load_records
    from fintune.data.tasks import as_sentiment_record, get_task

    if len({c.task for c in cfg.clients}) != 1 or not all(c.source for c in cfg.clients):
        raise SystemExit("pooling one file needs clients of one task, each on a source of it")
    rows = [json.dumps(as_sentiment_record(c.source, r)) for c in cfg.clients
            for r in load_records(c.train_file(), task=get_task(c.source)).rows]  # fmt: skip
    return _write(folder / "pooled-train.jsonl", rows)


def _write(path: Path, lines: list[str]) -> str:
    if not path.is_file():
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def constant(llm: Any, steps: int, **extra: Any) -> Any:
    """The client recipe trained `steps` steps at a constant rate: what a federated round does."""
    from fintune.config.schema import LLMRunConfig

    body = llm.model_dump(exclude={"pipeline"}, exclude_unset=True) | extra
    body.update(max_steps=steps, warmup_ratio=0.0, scheduler="constant", eval_each_epoch=False)
    return LLMRunConfig.model_validate(body)


def run_arm(arm: str, seed: int, args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    from fintune.federated.run import federate
    from fintune.llm.train import train_llm

    folder = root / f"seed{seed}" / arm
    folder.mkdir(parents=True, exist_ok=True)
    federated = arm in ("fedavg", "ffa", "fedsa")
    cfg = federated_config(args.run, args.rounds, args.local_steps, seed, arm if federated else "ffa")
    one_task = len({c.task for c in cfg.clients}) == 1
    if args.train_records:
        if arm.startswith("central") and not one_task:
            raise SystemExit("the centralised arms of a run of different tasks pool the registry's train splits")
        own_data(cfg, args.train_records, seed, root / f"seed{seed}" / "data")
    budget = args.rounds * args.local_steps
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    extra: dict[str, Any] = {}
    if arm == "base":
        scored = score_clients(cfg, lambda c: None, args.limit, folder)
    elif arm == "local":
        for client in cfg.clients:
            adapter = folder / client.name
            if not (adapter / "adapter_config.json").is_file():
                train_llm(constant(cfg.client_llm(client.name), budget), adapter, overwrite=True)
        scored = score_clients(cfg, lambda c: folder / c.name, args.limit, folder)
    elif arm.startswith("central"):
        # proportional: the pooled records as they come (72% tfns); balanced: each client's task the same
        # share, as in the federation, where every client trains the same steps
        adapter = folder / "adapter"
        steps = budget * len(cfg.clients)
        if one_task:
            if arm == "central_balanced":
                raise SystemExit("central_balanced mixes tasks: a run of one task has `central`")
            data = pooled_data(cfg, root / f"seed{seed}" / "data")
            pooled = constant(cfg.client_llm(cfg.clients[0].name), steps, dataset_path=data, eval_path=None)
        else:
            mixing = "balanced" if arm == "central_balanced" else "proportional"
            pooled = constant(cfg.client_llm(cfg.clients[0].name), steps, task=None,
                              tasks=[c.task for c in cfg.clients], mixing=mixing)  # fmt: skip
        if not (adapter / "adapter_config.json").is_file():
            train_llm(pooled, adapter, overwrite=True)
        scored = score_clients(cfg, lambda c: adapter, args.limit, folder)
    else:
        adapter = folder / "adapter"
        if not (adapter / "adapter_config.json").is_file():
            result = federate(cfg, adapter, overwrite=True)
            if result.failures:  # an adapter no client trained is the base model: never score it as the arm
                shutil.rmtree(adapter)
                raise SystemExit(f"{arm} seed {seed}: clients failed: {result.failures[0]['error']}")
            extra = {"bytes_per_round": _bytes(result.document), "federate_seconds": round(result.seconds, 1)}
        personal = arm == "fedsa"  # each client's own B: its personalised adapter
        scored = score_clients(cfg, lambda c: adapter / "clients" / c.name if personal else adapter, args.limit, folder)
    seconds = round(time.perf_counter() - start, 1)
    for task, metrics in scored.items():
        rows.append({"arm": arm, "seed": seed, "task": task, **metrics, "arm_seconds": seconds, **extra})
    return rows


def _bytes(document: dict[str, Any]) -> dict[str, float]:
    rounds = document.get("rounds", [])
    sent = [r.get("bytes_sent", 0) for r in rounds]
    received = [r.get("bytes_received", 0) for r in rounds]
    return {"sent": statistics.mean(sent) if sent else 0, "received": statistics.mean(received) if received else 0}


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| arm | " + " | ".join(f"{t} acc | {t} F1w" for t in CLIENTS) + " | mean acc | mean F1w | seeds |",
             "|---|" + "---|" * (2 * len(CLIENTS) + 3)]  # fmt: skip
    for arm in ARMS:
        mine = [r for r in rows if r["arm"] == arm]
        if not mine:
            continue
        cells, accs, f1s = [], [], []
        for task in CLIENTS:
            values = [r for r in mine if r["task"] == task]
            acc = [r["accuracy"] for r in values]
            f1 = [r["f1_weighted"] for r in values]
            cells += [_spread(acc), _spread(f1)]
            accs.append(statistics.mean(acc))
            f1s.append(statistics.mean(f1))
        seeds = len({r["seed"] for r in mine})
        lines.append(f"| {arm} | " + " | ".join(cells) +
                     f" | {statistics.mean(accs):.3f} | {statistics.mean(f1s):.3f} | {seeds} |")  # fmt: skip
    return "\n".join(lines)


def _spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="sentiment_clients", help="a run of configs/federated.yaml")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--local-steps", type=int, default=10)
    parser.add_argument("--limit", type=int, default=200, help="dev records scored per task")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--output", default="runs/federated-proof")
    parser.add_argument("--train-records", type=int, help="each client holds only this many train records")
    args = parser.parse_args()
    print(machine_line(), file=sys.stderr)
    root = Path(args.output)
    root.mkdir(parents=True, exist_ok=True)
    results = root / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.is_file() else []
    for seed in args.seeds:
        for arm in args.arms:
            if arm == "base" and any(r["arm"] == "base" for r in rows):
                continue  # the base model has no seed
            if any(r["arm"] == arm and r["seed"] == seed for r in rows):
                continue  # done in an earlier invocation: resumable
            new = run_arm(arm, seed, args, root)
            rows += new
            with results.open("a") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in new)
            print(f"{arm} seed {seed}: {new}", file=sys.stderr)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
