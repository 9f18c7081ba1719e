"""LoRA + classification/regression heads (issue 13) on the tiny model: a step trains both, eval takes their path."""

import json

import pytest
import torch
from transformers import TrainerCallback

from fintune.cli.main import main
from fintune.llm.heads import HEAD_FILE, HeadSpec, head_spec, read_head
from fintune.llm.prompts import Example
from tests.helpers import fpb_head_answers


class _Snapshot(TrainerCallback):
    """The trainable parameters before and after training."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def changed(self, part: str) -> list[str]:
        return [n for n in self.before if part in n and not torch.equal(self.before[n], self.after[n])]


def test_spec_maps_labels_and_standardises_numbers():
    examples = [Example("p", "b", ("a", "b")), Example("q", "a", ("a", "b"))]
    spec = head_spec("classify", examples)
    assert spec.labels == ("a", "b") and spec.num_labels == 2 and spec.target(examples[0]) == 1
    assert spec.answer(torch.tensor([0.1, 2.0])) == "b"
    reg = head_spec("regress", [Example("p", "1"), Example("q", "3")])
    assert (reg.shift, reg.scale, reg.num_labels) == (2.0, 1.0, 1)  # mean 2, population spread 1
    assert reg.target(Example("r", "4")) == 2.0 and float(reg.answer(torch.tensor([-1.5]))) == 0.5


@pytest.fixture
def fiqa_file(tmp_path):
    rows = [("profit rose", 0.6), ("sales fell", -0.5), ("sales were flat", 0.0)] * 4
    path = tmp_path / "fiqa.jsonl"
    path.write_text(
        "".join(json.dumps({"id": i, "text": t, "target": "gold", "score": s}) + "\n" for i, (t, s) in enumerate(rows))
    )
    return path


def _train(tiny_llm_dir, task, data, out, head, snapshot):
    from fintune.config.schema import LLMRunConfig
    from fintune.llm.heads import train_head

    cfg = LLMRunConfig(
        base_model=str(tiny_llm_dir),
        task=task,
        dataset_path=str(data),
        eval_path=str(data),
        head=head,
        max_steps=1,
        batch_size=4,
        lora_r=4,
        learning_rate=1e-2,
        eval_each_epoch=False,
        warmup_ratio=0.0,  # a first warmup step has learning rate 0
        scheduler="constant",
    )
    return train_head(cfg, out, callbacks=[snapshot])


@pytest.mark.parametrize(("task", "head"), [("fpb", "classify"), ("fiqa_sa_score", "regress")])
def test_one_step_trains_lora_and_head_and_eval_scores_with_the_head(
    tiny_llm_dir, fpb_file, fiqa_file, tmp_path, task, head, shared_data, capsys
):
    """(The regression baselines are fitted on the shared training split.)"""
    data = fpb_file if task == "fpb" else fiqa_file
    out, snapshot = tmp_path / "adapter", _Snapshot()
    result = _train(tiny_llm_dir, task, data, out, head, snapshot)
    assert result.steps == 1
    assert snapshot.changed("lora_B"), "LoRA weights did not move"
    assert snapshot.changed("score"), "head weights did not move"
    assert json.loads((out / "fintune_run.json").read_text())["head"] == head
    spec = read_head(out)
    assert isinstance(spec, HeadSpec) and spec.head == head
    assert spec.labels == (("negative", "neutral", "positive") if head == "classify" else ())

    metrics = tmp_path / "m.json"
    ev = ["llm", "eval", "--adapter", str(out), "--task", task, "--data", str(data), "--output", str(metrics)]
    assert main(ev) == 0
    scored = json.loads(metrics.read_text())
    if head == "classify":
        assert {"accuracy", "f1_weighted"} <= set(scored) and scored["no_label_rate"] == 0.0
    else:
        assert {"mse", "r2", "directional_accuracy"} <= set(scored) and scored["unparsed"] == 0.0
        assert "train_mean" in scored["baselines"]
    capsys.readouterr()
    assert main(["llm", "generate", "--adapter", str(out), "Sales fell."]) == 2  # a head writes no text
    assert f"a '{head}' head adapter scores labels or values" in capsys.readouterr().err


def test_head_file_is_required_for_a_head_adapter(tmp_path):
    with pytest.raises(FileNotFoundError, match=HEAD_FILE):
        read_head(tmp_path)


def test_cli_train_takes_the_head_recipe(tiny_llm_dir, fpb_file, tmp_path, capsys):
    out = tmp_path / "adapter"
    args = [
        "llm",
        "train",
        "--task",
        "fpb",
        "--data",
        str(fpb_file),
        "--model",
        str(tiny_llm_dir),
        "--head",
        "classify",
    ]
    assert main([*args, "--output", str(out), "--max-steps", "1", "--no-eval-each-epoch"]) == 0
    assert "saved adapter" in capsys.readouterr().out
    assert read_head(out).labels == ("negative", "neutral", "positive")


def test_calibration_is_least_squares_with_the_slope_kept_in_zero_to_one():
    from fintune.llm.heads import fit_calibration

    assert fit_calibration([-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]) == pytest.approx((0.0, 0.5))  # too wide: shrunk
    assert fit_calibration([1.0, 2.0, 3.0], [0.0, 1.0, 5.0]) == pytest.approx((2.0 - 1.0 * 2.0, 1.0))  # 2.5 -> 1
    assert fit_calibration([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx((2.0, 0.0))  # inverted: the mean
    assert fit_calibration([0.5, 0.5], [1.0, 3.0]) == pytest.approx((2.0, 0.0))  # no spread: the mean
    spec = HeadSpec("regress", shift=2.0, scale=0.5, intercept=0.2, slope=0.5)
    assert float(spec.answer(torch.tensor([1.0]))) == pytest.approx((0.2 + 0.5) * 0.5 + 2.0)


def test_a_regress_head_holds_out_examples_to_calibrate_and_eval_applies_it(tiny_llm_dir, fiqa_file, tmp_path):
    from fintune.cli.main import main as cli
    from fintune.config.schema import LLMRunConfig
    from fintune.llm.heads import calibration_split, train_head

    cfg = LLMRunConfig(
        base_model=str(tiny_llm_dir), task="fiqa_sa_score", dataset_path=str(fiqa_file), eval_path=str(fiqa_file),
        head="regress",
        head_calibration=0.25, max_steps=1, batch_size=4, lora_r=4, eval_each_epoch=False,
    )  # fmt: skip
    out = tmp_path / "adapter"
    result = train_head(cfg, out)
    assert result.examples == 9  # 3 of the 12 held out of training
    train, held = calibration_split([Example(str(i), str(i / 20)) for i in range(12)], cfg)
    assert len(held) == 3 and not {e.prompt for e in train} & {e.prompt for e in held}
    metrics = json.loads((out / "fintune_metrics.json").read_text())
    spec = read_head(out)
    assert metrics["calibration"]["examples"] == 3 and 0.0 <= spec.slope <= 1.0
    assert (metrics["calibration"]["intercept"], metrics["calibration"]["slope"]) == (spec.intercept, spec.slope)
    # eval reads the calibration: with the slope set to 0 every answer is the calibrated mean
    body = json.loads((out / HEAD_FILE).read_text())
    (out / HEAD_FILE).write_text(json.dumps(body | {"slope": 0.0, "intercept": 0.5}))
    report = tmp_path / "m.json"
    ev = ["llm", "eval", "--adapter", str(out), "--task", "fiqa_sa_score", "--data", str(fiqa_file)]
    assert cli([*ev, "--output", str(report), "--predictions", str(tmp_path / "p.jsonl")]) == 0
    answers = {json.loads(line)["answer"] for line in (tmp_path / "p.jsonl").read_text().splitlines()}
    assert answers == {f"{0.5 * spec.scale + spec.shift:.6g}"}
    off = cfg.model_copy(update={"head_calibration": 0.0})
    assert calibration_split([Example(str(i), "0") for i in range(12)], off)[1] == []


def _spread_head(adapter) -> None:
    """Seeded unit-scale head weights: after one step the tiny head's probabilities hardly move between texts.
    Larger (x10) saturated the softmax: two texts' probabilities both rounded to (0, 0, 1) on some inits."""
    from safetensors.torch import load_file, save_file

    path = adapter / "adapter_model.safetensors"
    weights, generator = load_file(str(path)), torch.Generator().manual_seed(0)
    for name, value in weights.items():
        if ".score." in name:
            weights[name] = torch.randn(value.shape, generator=generator)
    save_file(weights, str(path), metadata={"format": "pt"})


def test_a_head_adapter_answers_predict_and_the_playground_with_its_head(tiny_llm_dir, fpb_file, tmp_path):
    """/v1/predict's library path and the web UI's playground ask a head adapter through its head: the label is
    the argmax of the head over the task's own prompt (built here from the record), as `llm eval` scores it."""
    from fintune.errors import UsageError
    from fintune.llm.inference import head_of
    from fintune.llm.predict import as_example, predict_with_head
    from fintune.serving.llms import LLMPool
    from fintune.ui.playground import answer_one

    out = tmp_path / "adapter"
    _train(tiny_llm_dir, "fpb", fpb_file, out, "classify", _Snapshot())
    _spread_head(out)
    texts = ["Operating profit rose to EUR 13.1 mn.", "Sales fell sharply.", "The board met on Tuesday."]
    expected, probabilities = fpb_head_answers(out, texts)
    assert len({tuple(p.values()) for p in probabilities}) == len(texts)  # the head reads each text

    pool = LLMPool()
    assert head_of(out) == "classify" and head_of(None) == "generate"
    head = pool.head(None, str(out))
    served = predict_with_head(head.model, head.tokenizer, head.spec, head.settings, "fpb", texts)
    assert [p["answer"] for p in served] == expected and [p["prediction"] for p in served] == expected
    for got, want in zip(served, probabilities, strict=True):
        assert got["scores"] == pytest.approx(want, abs=1e-6)
    assert pool.head(None, str(out)) is head and str(out.resolve()) in pool.loaded()  # loaded once, listed
    with pytest.raises(UsageError, match="/v1/predict"):
        pool.prepare(None, str(out))  # the generation path (chat) refuses it
    with pytest.raises(UsageError, match="chooses among negative/neutral/positive; task 'headline'"):
        predict_with_head(head.model, head.tokenizer, head.spec, head.settings, "headline", texts)

    shown = answer_one("fpb", as_example("fpb", texts[0]), "", str(out))
    assert shown["answer"] == expected[0] and shown["parsed"] == expected[0]


def test_a_regression_head_serves_only_regression_tasks():
    from fintune.errors import UsageError
    from fintune.llm.predict import check_head_serves

    check_head_serves(HeadSpec("regress"), "fiqa_sa_score")
    check_head_serves(HeadSpec("classify", ("positive", "negative", "neutral")), "fpb")  # order is the head's own
    with pytest.raises(UsageError, match="regression head predicts a number; task 'fpb' is classification"):
        check_head_serves(HeadSpec("regress"), "fpb")
    with pytest.raises(UsageError, match="task 'fiqa_sa_score' asks regression"):
        check_head_serves(HeadSpec("classify", ("negative", "neutral", "positive")), "fiqa_sa_score")
