"""The task service's cost: (a) API overhead on a real embedding run, (b) latency under 50 concurrent clients.

(a) The same small run (MiniLM, a slice of the shared 10-K QA data: `--train-queries` train queries at
batch 4, one epoch, before/after scoring on 8 dev queries) as `fintune embed train` in a fresh process
and as a task of a running `fintune serve` (embedded PostgreSQL, one worker), interleaved; wall time
from the command's start / the POST to its end / `succeeded`. The first service task also pays the
worker's imports, so medians over the rounds are compared, and the first round is shown.
(b) 50 clients at once on loopback against `fintune serve --workers 0` (nothing trains): each submits one
task (its own idempotency key), then reads it `--gets` times; p50/p95 of submit and get, and the errors.

    .venv/bin/python benchmarks/service.py [--rounds 2] [--clients 50] [--gets 5] [--train-queries 40]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_line

TOKEN = "benchmark-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TASKS = "/v1/fine-tuning/tasks"
RUN = {"epochs": 1, "batch_size": 4, "max_seq_length": 128, "validation_group_by": "none", "style_check": False,
       "hard_negatives": 0}  # fmt: skip
CLI_FLAGS = ["--epochs", "1", "--batch-size", "4", "--max-seq-length", "128", "--validation-group-by", "none",
             "--no-style-check", "--hard-negatives", "0"]  # fmt: skip


def write_slice(root: Path, train_queries: int) -> Path:
    """8 dev and `train_queries` train queries of the 10-K QA task, their passages and 24 distractors."""
    from fintune.data.beir import load_beir
    from fintune.data.tasks import get_task

    src = get_task("financial_qa_10k").path("dev")
    splits = {"dev": load_beir(src, "dev"), "train": load_beir(src, "train")}
    picked = {"dev": list(splits["dev"].qrels)[:8], "train": list(splits["train"].qrels)[:train_queries]}
    corpus = splits["dev"].corpus
    wanted = {d for name, qids in picked.items() for q in qids for d in splits[name].qrels[q]}
    wanted |= set(list(corpus)[:24])
    out = root / "slice_10k"
    (out / "qrels").mkdir(parents=True)
    lines = [json.dumps(corpus[d]) for d in corpus if d in wanted]
    (out / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    queries = [json.dumps({"_id": q, "text": splits[n].queries[q]}) for n, qids in picked.items() for q in qids]
    (out / "queries.jsonl").write_text("\n".join(queries) + "\n")
    for name, qids in picked.items():
        rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q in qids for d in splits[name].qrels[q]]
        (out / "qrels" / f"{name}.tsv").write_text("\n".join(rows) + "\n")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`fintune serve` in its own process group, with its own $FINTUNE_HOME (so its own embedded database)."""

    def __init__(self, home: Path, data_root: Path, workers: int):
        self.url = f"http://127.0.0.1:{free_port()}"
        env = os.environ | {"FINTUNE_HOME": str(home), "FINTUNE_API_TOKEN": TOKEN}
        env.pop("FINTUNE_DATABASE_URL", None)
        self.log = (home.parent / f"serve-{home.name}.log").open("w")
        args = ["serve", "--port", self.url.rsplit(":", 1)[1], "--workers", str(workers), "--data-root", str(data_root)]
        self.proc = subprocess.Popen([sys.executable, "-m", "fintune", *args], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        want = 200 if workers else 503  # 503: up, with no worker
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"fintune serve exited; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=5).status_code == want:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"fintune serve never became ready; see {self.log.name}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # serve stops its worker and the database it started
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own process group only
        self.log.close()


def cli_run(data: Path, output: Path) -> float:
    start = time.perf_counter()
    command = [sys.executable, "-m", "fintune", "embed", "train", "--model", "minilm", "--data", str(data),
               "--output", str(output), *CLI_FLAGS]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def service_run(client: httpx.Client, data: Path) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    task = client.post(TASKS, json={"kind": "embedding", "base_model": "minilm", "data": data.name, "config": RUN})
    task.raise_for_status()
    while (current := client.get(f"{TASKS}/{task.json()['id']}").json())["status"] in ("pending", "running"):
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    if current["status"] != "succeeded":
        raise SystemExit(f"service task {current['id']}: {current['status']}: {current['error']}")
    return seconds, current


def overhead(work: Path, data: Path, rounds: int) -> None:
    server = Server(work / "home-a", data.parent, workers=1)
    cli: list[float] = []
    service: list[float] = []
    steps = None
    try:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
            for i in range(rounds):  # interleaved, so a change in the machine's load hits both sides
                cli.append(cli_run(data, work / f"cli-{i}"))
                seconds, task = service_run(client, data)
                service.append(seconds)
                steps = task["metrics"]["steps"]
                print(f"round {i + 1}: cli {cli[-1]:.1f} s, service {service[-1]:.1f} s", file=sys.stderr)
    finally:
        server.stop()
    cli_m, svc_m = statistics.median(cli), statistics.median(service)
    print(f"(a) embedding run, {steps} steps: `fintune embed train` median {cli_m:.1f} s, service task median "
          f"{svc_m:.1f} s, ratio {svc_m / cli_m:.3f} (first round: {service[0] / cli[0]:.3f}); "
          f"cli {[round(s, 1) for s in cli]}, service {[round(s, 1) for s in service]}")  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def load(work: Path, data: Path, clients: int, gets: int) -> None:
    server = Server(work / "home-b", data.parent, workers=0)
    submits: list[float] = []
    reads: list[float] = []
    errors: list[str] = []
    ids: list[int] = []
    lock = threading.Lock()
    start_together = threading.Barrier(clients)

    def one_client(n: int) -> None:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
            body = {"kind": "embedding", "data": data.name, "config": {**RUN, "max_steps": 1},
                    "idempotency_key": f"bench-{n}"}  # fmt: skip
            start_together.wait()
            try:
                t0 = time.perf_counter()
                created = client.post(TASKS, json=body)
                t1 = time.perf_counter()
                if created.status_code != 201:
                    raise RuntimeError(f"submit {created.status_code}: {created.text[:200]}")
                task_id = created.json()["id"]
                times = []
                for _ in range(gets):
                    t2 = time.perf_counter()
                    got = client.get(f"{TASKS}/{task_id}")
                    times.append(time.perf_counter() - t2)
                    if got.status_code != 200:
                        raise RuntimeError(f"get {got.status_code}: {got.text[:200]}")
            except Exception as exc:  # counted, not raised: the figure is the error count
                with lock:
                    errors.append(str(exc))
                return
            with lock:
                submits.append(t1 - t0)
                reads.extend(times)
                ids.append(task_id)

    try:
        threads = [threading.Thread(target=one_client, args=(n,)) for n in range(clients)]
        wall = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - wall
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
            total = client.get(TASKS, params={"limit": 1}).json()["total"]
            for task_id in ids:
                client.post(f"{TASKS}/{task_id}/cancel")
    finally:
        server.stop()
    ms = 1000
    print(f"(b) {clients} clients x (1 submit + {gets} gets) in {wall:.1f} s: submit p50 "
          f"{percentile(submits, 50) * ms:.0f} ms p95 {percentile(submits, 95) * ms:.0f} ms; get p50 "
          f"{percentile(reads, 50) * ms:.0f} ms p95 {percentile(reads, 95) * ms:.0f} ms; errors {len(errors)}; "
          f"tasks in the database {total}")  # fmt: skip
    for error in errors[:5]:
        print(f"  error: {error}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--gets", type=int, default=5)
    parser.add_argument("--train-queries", type=int, default=40)
    parser.add_argument("--skip", choices=("overhead", "load"), help="run only the other part")
    args = parser.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="fintune-bench-service-") as tmp:
        work = Path(tmp)
        data = write_slice(work / "data", args.train_queries)
        if args.skip != "load":
            load(work, data, args.clients, args.gets)
        if args.skip != "overhead":
            overhead(work, data, args.rounds)


if __name__ == "__main__":
    main()
