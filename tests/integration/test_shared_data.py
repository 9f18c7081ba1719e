"""Every shared task file passes its task's checks; the known bad records are found, not dropped."""

from __future__ import annotations

import pytest

from fintune.data.beir import collect_beir
from fintune.data.inspect import inspect_path
from fintune.data.loading import collect
from fintune.data.tasks import TASKS

pytestmark = pytest.mark.slow

JSONL_TASKS = [(t.name, s) for t in TASKS.values() if t.layout == "jsonl" for s in t.splits]


@pytest.mark.parametrize(("task", "split"), JSONL_TASKS)
def test_shared_task_files_are_valid(shared_data, task, split):
    records = collect(TASKS[task].path(split, root=shared_data), task=task)
    assert records.errors == [] and len(records) > 50


def test_10k_qa_bad_records_are_reported_per_split(shared_data):
    folder = TASKS["financial_qa_10k"].path("train", root=shared_data)
    train = collect_beir(folder, "train")
    dev = collect_beir(folder, "dev")
    # One empty passage (searched in every split) and one empty query (judged only in train).
    assert sorted(e.path.name for e in train.errors) == ["corpus.jsonl", "queries.jsonl"]
    assert [e.path.name for e in dev.errors] == ["corpus.jsonl"]
    assert len(dev.queries) == 529 and len(dev.corpus) == 5313


def test_inspect_reports_label_distribution_of_fpb(shared_data):
    report = inspect_path(TASKS["fpb"].path("dev", root=shared_data), task="fpb")
    assert report.ok and report.rows == 362
    assert set(report.labels["label"]) == {"negative", "neutral", "positive"}
    assert sum(report.labels["label"].values()) == 362
