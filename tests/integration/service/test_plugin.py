"""A fine-tuning method from a separate distribution, found through the `fintune.methods` entry points,
runs as a task through the API like the built-in kinds."""

from __future__ import annotations

import sys
import textwrap

import pytest

from fintune.service.app import PREFIX
from fintune.service.methods import methods
from tests.integration.service.conftest import wait_for, wait_healthy

pytestmark = pytest.mark.slow

PLUGIN = '''
"""A toy method: "trains" by counting the data file's lines `rounds` times."""
import json
from pydantic import BaseModel, ConfigDict, Field
from fintune.artifacts import atomic_dir
from fintune.service.methods import FineTuningMethod, MethodResult

class CountConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: str
    model: str = "counter"
    rounds: int = Field(1, ge=1)

def train(call):
    lines = len(open(call.config.data).read().splitlines())
    with atomic_dir(call.output) as tmp:
        (tmp / "count.json").write_text(json.dumps({"lines": lines * call.config.rounds}))
    return MethodResult(metrics_after={"lines": lines * call.config.rounds})

METHOD = FineTuningMethod(kind="count", config_class=CountConfig, train=train)
'''


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """The plugin as an installed distribution: its module and a dist-info with the entry point."""
    site = tmp_path / "site"
    (site / "count_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "count_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (site / "count_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: count-plugin\nVersion: 0.1\n"
    )
    (site / "count_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[fintune.methods]\ncount = count_plugin:METHOD\n"
    )
    monkeypatch.syspath_prepend(str(site))
    methods.cache_clear()
    yield
    methods.cache_clear()
    sys.modules.pop("count_plugin", None)


def test_plugin_task_through_the_api(installed_plugin, make_client, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "lines.txt").write_text("a\nb\nc\n")
    assert "count" in methods()
    with make_client([root], workers=1) as client:
        wait_healthy(client)
        bad = client.post(PREFIX, json={"kind": "count", "data": "lines.txt", "config": {"rounds": 0}})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "config", "rounds"]
        created = client.post(PREFIX, json={"kind": "count", "data": "lines.txt", "config": {"rounds": 2}})
        assert created.status_code == 201, created.text
        task = wait_for(client, created.json()["id"], {"succeeded", "failed"}, 120)
    assert task["status"] == "succeeded", task["error"]
    assert task["metrics_after"] == {"lines": 6}  # 3 lines, 2 rounds
    assert (tmp_path / "home" / "service" / "artifacts" / str(task["id"]) / "count.json").is_file()
