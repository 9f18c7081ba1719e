"""Federated LoRA through Flower's simulation runtime on SmolLM2 and real FPB/TFNS records.

Two institutions train 2 rounds of 2 steps each (FFA-LoRA); a third one's file is malformed. The run
must finish, name the bad file and line, keep the others' work, and leave an adapter that loads, whose
A is still the shared seeded initialisation, and the server must only ever have received B arrays.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from fintune.cli.main import main
from fintune.data.tasks import get_task
from fintune.federated import local
from fintune.federated.config import FederatedRunConfig
from fintune.federated.run import federate
from fintune.llm.model import load_causal_lm
from tests.conftest import write_jsonl
from tests.unit.llm.conftest import make_tiny_llm

pytestmark = pytest.mark.slow  # SmolLM2 in a Ray worker, real data


def _slice(task: str, root, n: int = 32):
    rows = [json.loads(line) for line in get_task(task).path("train").read_text().splitlines()[:n]]
    return write_jsonl(root / f"{task}.jsonl", rows)


def test_ffa_on_smollm2_through_flower(shared_data, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "text": "Profit rose .", "label": "positive"}\n{"id": "2", "text": "x"}\n')
    cfg = FederatedRunConfig.model_validate(
        {
            "llm": {"base_model": "smollm2", "lora_r": 4, "batch_size": 2, "max_seq_length": 128},
            "clients": [
                {"name": "fpb", "task": "fpb", "data": str(_slice("fpb", tmp_path))},
                {"name": "tfns", "task": "tfns", "data": str(_slice("tfns", tmp_path))},
                {"name": "bank3", "task": "fpb", "data": str(bad)},
            ],
            "rounds": 2,
            "local_steps": 2,
            "aggregation": "ffa",
            "eval_limit": 2,
            "eval_base": False,
            "client_cpus": 2,  # one Ray worker: the clients take turns, torch imports once on a 2-core box
        }
    )
    out = tmp_path / "adapter"
    result = federate(cfg, out)

    assert [(f["round"], f["client"]) for f in result.failures] == [(1, "bank3"), (2, "bank3")]
    assert f"{bad}:2: label" in result.failures[0]["error"]
    rounds = json.loads((out / "fintune_federated.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    for record in rounds:
        assert {n: c["num_examples"] for n, c in record["clients"].items()} == {"fpb": 4, "tfns": 4}
        assert set(record["validation"]) == {"fpb", "tfns", "bank3"}  # server-side, each client task's dev
        assert 0 <= record["validation"]["tfns"]["accuracy"] <= 1 and record["wall_seconds"] > 0
        assert record["bytes_sent"] > 0 and record["train_loss"] > 0

    saved = load_file(str(out / "adapter_model.safetensors"))
    b_names = {n for n in saved if ".lora_B." in n}
    for got in result.received_names:  # what reached the server: B arrays by name, nothing else
        assert set(got) == {"fpb", "tfns"} and all(set(names) == b_names for names in got.values())
    init = local.get_arrays(local.adapter_model(cfg.llm).model)
    for name in (n for n in saved if ".lora_A." in n):
        np.testing.assert_array_equal(saved[name].astype(np.float32), init[name])  # A: the shared seeded init
    assert any(np.abs(saved[n]).max() > 0 for n in b_names)

    model, _ = load_causal_lm(adapter=out)  # what `fintune llm eval` loads
    assert type(model).__name__ == "PeftModelForCausalLM"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the SuperLink exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on port {port} after {seconds:.0f} s")


def _tls_files(folder: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: what an operator gives the SuperLink."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(name("fintune test CA")).issuer_name(name("fintune test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    server = (
        x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    files = {"ca": folder / "ca.crt", "cert": folder / "server.pem", "key": folder / "server.key"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


def test_loopback_deployment_runtime_with_tls(tmp_path):
    """SuperLink + 2 SuperNodes as separate processes on loopback over TLS (the README's commands), the app
    written by `fintune llm federate --flower-app`, `flwr run`, then the run's own status."""
    torch.manual_seed(1)
    model = make_tiny_llm(tmp_path / "model")
    rows = [{"id": i, "text": t, "label": lab} for i, (t, lab) in enumerate([("profit rose", "positive")] * 8)]
    files = {n: write_jsonl(tmp_path / f"{n}.jsonl", rows) for n in ("a", "b")}
    run = {
        "pipeline": "federated",
        "llm": {"base_model": str(model), "lora_r": 4, "batch_size": 4, "max_seq_length": 64},
        "clients": [{"name": n, "task": "fpb", "data": str(f), "eval_data": str(f)} for n, f in files.items()],
        "rounds": 1,
        "local_steps": 2,
        "eval_limit": 2,
        "eval_base": False,
    }
    config = tmp_path / "federated.json"
    config.write_text(json.dumps({"tiny": run}))
    out, app = tmp_path / "adapter", tmp_path / "app"
    assert main(["llm", "federate", "--config", str(config), "--run", "tiny", "--output", str(out),
                 "--flower-app", str(app), "aggregation=fedavg"]) == 0  # fmt: skip
    assert not out.exists()  # only the app is written: the SuperLink's ServerApp trains
    tls = _tls_files(tmp_path)
    home = tmp_path / "flwr_home"
    home.mkdir()
    link_port = _free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = "127.0.0.1:{link_port}"\n'
        f'root-certificates = "{tls["ca"]}"\n'
    )
    bin_dir = Path(sys.executable).parent  # Flower starts its helpers (flower-superexec, flwr-*app) by name
    env = os.environ | {"FLWR_HOME": str(home), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    no_installs = "--disable-runtime-dependency-installation"  # offline machines: the apps are installed
    certs = ["--ssl-ca-certfile", str(tls["ca"]), "--ssl-certfile", str(tls["cert"]), "--ssl-keyfile", str(tls["key"])]
    link = [str(bin_dir / "flower-superlink"), "--port", str(link_port), no_installs, *certs]
    node = [str(bin_dir / "flower-supernode"), "--superlink", f"127.0.0.1:{link_port}",
            "--root-certificates", str(tls["ca"])]  # fmt: skip
    commands = [link] + [[*node, "--port", str(_free_port()), "--node-config", f'client="{n}"'] for n in files]
    procs: list[subprocess.Popen] = []
    try:
        for i, command in enumerate(commands):
            log_file = (tmp_path / f"proc{i}.log").open("w")
            # a session of its own: the SuperLink's and SuperNodes' helpers are stopped with them, nothing else
            procs.append(
                subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
            )
            if i == 0:
                _wait_for_port(link_port, procs[0])
        flwr = str(bin_dir / "flwr")
        done = subprocess.run([flwr, "run", str(app), "--stream"], env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        listing = subprocess.run([flwr, "ls", "--format", "json"], env=env, capture_output=True, text=True, cwd=app)
        status = [r["status"] for r in json.loads(listing.stdout)["runs"]]
        assert status == ["finished:completed"], listing.stdout  # `flwr run` exits 0 even when the run failed
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
    logs = "".join((tmp_path / f"proc{i}.log").read_text() for i in range(len(commands)))
    assert "insecure" not in logs.lower(), logs[-2000:]  # every hop was TLS: no component fell back
    record = json.loads((out / "fintune_federated.json").read_text())
    assert [sorted(r["clients"]) for r in record["rounds"]] == [["a", "b"]] and record["failures"] == []
    assert record["rounds"][0]["product_error"]  # the override reached the SuperLink's run: fedavg, not ffa
    model_, _ = load_causal_lm(adapter=out)
    assert type(model_).__name__ == "PeftModelForCausalLM"
