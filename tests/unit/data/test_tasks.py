import pytest

from fintune.data.tasks import TASKS, get_task


def test_registry_has_every_shared_task():
    assert set(TASKS) == {
        "fpb",
        "tfns",
        "headline",
        "ner",
        "xbrl_term",
        "formula",
        "financebench",
        "ectsum",
        "financial_qa_10k",
        "stocknet",
        "fiqa_sa_score",
        "sentiment",
        "fiqa_sa",
        "rag_10k",
    }


def test_task_paths_follow_the_shared_layout(tmp_path):
    assert get_task("fpb").path("dev", root=tmp_path) == tmp_path / "sentiment/fpb/dev.jsonl"
    assert get_task("financial_qa_10k").path("train", root=tmp_path) == tmp_path / "retrieval/financial_qa_10k"
    with pytest.raises(ValueError, match="no split 'dev'"):
        get_task("formula").path("dev")


def test_unknown_task_suggests_the_closest():
    with pytest.raises(ValueError, match="did you mean 'fpb'"):
        get_task("fbp")
