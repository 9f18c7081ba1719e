import optuna
import pytest

from fintune.config.schema import EmbedRunConfig, SearchDimension
from fintune.embed.tune import sample, tune


def test_search_space_sampling_respects_types_and_ranges():
    trial = optuna.trial.FixedTrial({"learning_rate": 3e-5, "num_fixed_layers": 2, "loss": "mnrl"})
    space = {
        "learning_rate": SearchDimension(low=1e-5, high=1e-4, log=True),
        "num_fixed_layers": SearchDimension(low=0, high=4),
        "loss": SearchDimension(choices=["mnrl", "cosent"]),
    }
    assert sample(trial, space) == {"learning_rate": 3e-5, "num_fixed_layers": 2, "loss": "mnrl"}


def test_study_runs_saves_the_best_model_and_resumes(tiny_bert_dir, tiny_beir, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    config = EmbedRunConfig(
        model=str(tiny_bert_dir),
        data=str(tiny_beir),
        output=str(tmp_path / "best"),
        batch_size=4,
        search_space={
            "learning_rate": SearchDimension(low=1e-5, high=1e-3, log=True),
            "num_fixed_layers": SearchDimension(choices=[0, 1]),
        },
    )
    first = tune(config, trials=2, storage=storage)
    assert len(first.table) == 2 and (tmp_path / "best" / "model.safetensors").is_file()
    assert first.best_value == max(row["value"] for row in first.table if row["value"] is not None)
    assert 1e-5 <= first.best_params["learning_rate"] <= 1e-3
    second = tune(config, trials=3, storage=storage)  # resumes: one more trial, not three
    assert [row["trial"] for row in second.table] == [0, 1, 2]


def test_unknown_search_key_is_refused(tiny_bert_dir, tiny_beir, tmp_path):
    config = EmbedRunConfig(
        model=str(tiny_bert_dir),
        data=str(tiny_beir),
        output=str(tmp_path / "b"),
        search_space={"learning_rat": SearchDimension(low=1e-5, high=1e-4)},
    )
    with pytest.raises(ValueError, match="learning_rat"):
        tune(config, trials=1, storage=f"sqlite:///{tmp_path / 's.db'}")
