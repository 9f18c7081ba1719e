import optuna
import pytest

from fintune.config.schema import EmbedRunConfig, SearchDimension
from fintune.embed.tune import sample, tune

SPACE = {
    "learning_rate": SearchDimension(low=1e-5, high=1e-4, log=True),
    "num_fixed_layers": SearchDimension(low=0, high=4),
    "batch_size": SearchDimension(low=8, high=64, log=True),
    "margin": SearchDimension(low=0.0, high=2.0),
    "loss": SearchDimension(choices=["mnrl", "cosent"]),
}


def test_each_dimension_becomes_the_optuna_distribution_it_describes():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    sample(trial, SPACE)
    assert trial.distributions == {
        "learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-4, log=True),
        "num_fixed_layers": optuna.distributions.IntDistribution(0, 4),  # an int setting: an int range
        "batch_size": optuna.distributions.IntDistribution(8, 64, log=True),
        "margin": optuna.distributions.FloatDistribution(0.0, 2.0),  # whole-number bounds stay a float range
        "loss": optuna.distributions.CategoricalDistribution(["mnrl", "cosent"]),
    }


def test_sampled_values_have_the_types_and_cover_the_ranges():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    draws = [sample(study.ask(), SPACE) for _ in range(300)]
    rates = [d["learning_rate"] for d in draws]
    assert all(1e-5 <= r <= 1e-4 for r in rates)
    # log scale: about half below the geometric middle 3.2e-5 (a linear range puts a quarter there)
    assert 0.4 < sum(r < 10**-4.5 for r in rates) / len(rates) < 0.6
    assert {d["num_fixed_layers"] for d in draws} == {0, 1, 2, 3, 4}
    assert all(type(d["num_fixed_layers"]) is int and type(d["batch_size"]) is int for d in draws)
    assert all(8 <= d["batch_size"] <= 64 for d in draws) and min(d["batch_size"] for d in draws) < 12
    assert all(type(d["margin"]) is float and 0.0 <= d["margin"] <= 2.0 for d in draws)
    assert len({d["margin"] for d in draws}) > 100
    assert {d["loss"] for d in draws} == {"mnrl", "cosent"}


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
