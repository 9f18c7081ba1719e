"""A task's own training defaults (`FinancialTask.recipe`) fill only what the run left unset."""

from __future__ import annotations

import pytest

from fintune.config.schema import LLMRunConfig
from fintune.data.tasks import get_task
from fintune.llm.train import task_recipe


def test_rag_10k_trains_a_step_budget_by_default():
    cfg = task_recipe(LLMRunConfig(task="rag_10k"))
    recipe = dict(get_task("rag_10k").recipe)
    assert recipe["max_steps"] and cfg.max_steps == recipe["max_steps"]
    assert cfg.eval_limit == recipe["eval_limit"] != LLMRunConfig().eval_limit


@pytest.mark.parametrize(
    ("settings", "max_steps", "epochs"),
    [({"max_steps": 7}, 7, 1.0), ({"num_epochs": 2}, None, 2.0), ({"num_epochs": 2, "max_steps": 3}, 3, 2.0)],
)
def test_settings_the_run_gives_win_over_the_task_recipe(settings, max_steps, epochs):
    cfg = task_recipe(LLMRunConfig(task="rag_10k", eval_limit=5, **settings))
    assert (cfg.max_steps, cfg.num_epochs, cfg.eval_limit) == (max_steps, epochs, 5)


def test_tasks_without_a_recipe_and_mixtures_are_unchanged():
    single = LLMRunConfig(task="fpb")
    assert task_recipe(single) == single
    mixed = LLMRunConfig(tasks=["rag_10k", "fpb"])
    assert task_recipe(mixed).max_steps is None
