"""A head adapter (LoRA plus a classification head, `fintune llm train --head classify`) trained on SmolLM2 and
real fpb sentences, deployed and asked through `/v1/predict`: it answers with its head, as `llm eval` scores it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import fpb_head_answers
from tests.integration.serving.conftest import client

pytestmark = pytest.mark.slow

TEXTS = [
    "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007.",
    "Net sales decreased by 19% and the company warned of further losses.",
    "The annual general meeting will be held in Helsinki on 15 March.",
]


@pytest.fixture(scope="module")
def fpb_head(tmp_path_factory) -> Path:
    """Two steps on 16 fpb training sentences: the serving mechanics, not the head's quality."""
    from fintune.config.schema import LLMRunConfig
    from fintune.data.tasks import data_root
    from fintune.llm.heads import train_head

    folder = tmp_path_factory.mktemp("head")
    rows = (data_root() / "sentiment" / "fpb" / "train.jsonl").read_text(encoding="utf-8").splitlines()[:16]
    data = folder / "fpb16.jsonl"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    cfg = LLMRunConfig(
        base_model="smollm2", task="fpb", dataset_path=str(data), head="classify", max_steps=2, batch_size=8,
        lora_r=4, max_seq_length=128, eval_each_epoch=False,
    )  # fmt: skip
    train_head(cfg, folder / "fpb-head")
    return folder / "fpb-head"


def test_a_head_deployment_predicts_with_its_head_and_refuses_chat(serve, fpb_head) -> None:
    expected, probabilities = fpb_head_answers(fpb_head, TEXTS)
    with serve([fpb_head.parent]) as url:
        http = client(url)
        made = http.post("/v1/deployments", json={"name": "fpb-head", "kind": "llm", "adapter": str(fpb_head)})
        assert made.status_code == 201, made.text
        asked = http.post("/v1/predict", json={"deployment": "fpb-head", "task": "fpb", "inputs": TEXTS})
        assert asked.status_code == 200, asked.text
        assert asked.headers["X-Fintune-Model-Version"] == "v1"
        predictions = asked.json()["predictions"]
        assert [p["answer"] for p in predictions] == expected == [p["prediction"] for p in predictions]
        for got, want in zip(predictions, probabilities, strict=True):
            assert got["scores"] == pytest.approx(want, abs=1e-5)  # each text's own head output

        other = http.post("/v1/predict", json={"deployment": "fpb-head", "task": "headline", "inputs": TEXTS})
        assert other.status_code == 400 and "task 'headline'" in other.json()["detail"]
        chat = http.post(
            "/v1/chat/completions", json={"model": "fpb-head", "messages": [{"role": "user", "content": "Hi"}]}
        )
        assert chat.status_code == 400 and "/v1/predict" in chat.json()["detail"]
    assert json.loads((fpb_head / "fintune_run.json").read_text())["head"] == "classify"
