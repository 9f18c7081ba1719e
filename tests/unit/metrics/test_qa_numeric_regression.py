import pytest

from fintune.metrics.numeric import first_number, numeric_metrics
from fintune.metrics.qa import normalize_answer, qa_metrics, token_f1
from fintune.metrics.regression import regression_metrics


def test_normalisation_and_token_f1_by_hand():
    assert normalize_answer("The Net Revenue, rose!") == "net revenue rose"
    # prediction tokens {net, revenue, rose, 5}, reference {revenue, rose}: P 2/4, R 2/2 -> F1 2/3
    assert token_f1("Net revenue rose 5", "revenue rose") == pytest.approx(2 / 3)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0


def test_qa_metrics_by_hand():
    metrics = qa_metrics(["The answer is Apple", "apple."], ["Apple", "Apple"])
    assert metrics["exact_match"] == 0.5
    assert metrics["token_f1"] == pytest.approx((2 * (1 / 3) * 1 / (1 / 3 + 1) + 1) / 2)


@pytest.mark.parametrize(
    ("text", "value"),
    [("21462.58", 21462.58), ("The NPV is $1,234.50.", 1234.5), ("-3% change", -3.0), ("none", None)],
)
def test_first_number(text, value):
    assert first_number(text) == value


def test_numeric_accuracy_within_tolerance():
    metrics = numeric_metrics(["100.5", "about 90", "n/a", "2.00"], ["100.00", "100", "5", "2.01"], rel_tol=0.01)
    # 100.5 vs 100 within 1%; 90 vs 100 not; no number; 2.00 vs 2.01 within abs 0.01
    assert metrics == {"accuracy": 0.5, "parsed_rate": 0.75}


def test_regression_by_hand():
    metrics = regression_metrics([1.0, 2.0, 4.0], [1.0, 2.0, 3.0])
    assert metrics["mse"] == pytest.approx(1 / 3)
    assert metrics["r2"] == pytest.approx(1 - (1) / 2)  # SS_res 1, SS_tot 2
