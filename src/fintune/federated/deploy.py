"""A Flower app folder for the deployment runtime (SuperLink + one SuperNode per client, any machines).

`flwr run FOLDER CONNECTION` ships only this pyproject.toml: its components name fintune's installed
apps, and its run config carries the whole FederatedRunConfig as JSON, so every SuperNode trains the
same recipe. Each SuperNode says which client it is with `--node-config 'client="NAME"'`.
"""

from __future__ import annotations

from pathlib import Path

import tomli_w

from fintune.federated.config import FederatedRunConfig
from fintune.federated.records import CONFIG_KEY
from fintune.federated.server import OUTPUT_KEY

SERVER_APP, CLIENT_APP = "fintune.federated.server:app", "fintune.federated.client:app"


def write_flower_app(cfg: FederatedRunConfig, output: str | Path, folder: str | Path) -> Path:
    """pyproject.toml of a Flower app that runs `cfg` and writes the adapter to `output` (on the server)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    settings = cfg.model_dump_json(exclude_unset=True)  # an unset field stays a default (see client_llm)
    project = {
        "project": {"name": "fintune-federated", "version": "1.0.0", "description": cfg.description or ""},
        "tool": {
            "flwr": {
                "app": {
                    "publisher": "fintune",
                    "components": {"serverapp": SERVER_APP, "clientapp": CLIENT_APP},
                    "config": {CONFIG_KEY: settings, OUTPUT_KEY: str(Path(output).resolve())},
                }
            }
        },
    }
    path = folder / "pyproject.toml"
    path.write_text(tomli_w.dumps(project), encoding="utf-8")
    return path
