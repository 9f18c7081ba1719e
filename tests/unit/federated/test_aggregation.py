"""LoRA aggregation against values worked out by hand on 1x2 / 2x1 matrices."""

import numpy as np
import pytest

from fintune.federated.aggregation import aggregate, fedavg, fedsa, ffa, module_of, product_error, shared_names

A, B = "layers.0.q_proj.lora_A.weight", "layers.0.q_proj.lora_B.weight"


def _client(a, b):
    return {A: np.array(a, dtype=np.float32), B: np.array(b, dtype=np.float32)}


# client 1 (1 example): A=[1 0], B=[1 0]^T; client 2 (3 examples): A=[0 1], B=[0 1]^T
ONE, TWO = _client([[1, 0]], [[1], [0]]), _client([[0, 1]], [[0], [1]])


def test_fedavg_weights_by_examples_and_averages_a_and_b_separately():
    mean, _ = fedavg([ONE, TWO], [1, 3])
    np.testing.assert_allclose(mean[A], [[0.25, 0.75]])
    np.testing.assert_allclose(mean[B], [[0.25], [0.75]])
    assert mean[A].dtype == np.float32


def test_fedavg_logs_the_error_against_the_mean_of_b_times_a():
    # mean(BA) = [[.25, 0], [0, .75]]; mean(B) mean(A) = [[.0625, .1875], [.1875, .5625]]
    # difference has four entries of ±0.1875: Frobenius norm sqrt(4 * 0.1875²) = 0.375
    _, error = fedavg([ONE, TWO], [1, 3])
    assert error == {"layers.0.q_proj": pytest.approx(0.375)}


def test_ffa_is_exact_when_a_is_shared():
    shared_a = np.array([[1.0, 2.0]])
    b1, b2 = np.array([[1.0], [0.0]]), np.array([[3.0], [4.0]])
    mean = ffa([{B: b1}, {B: b2}], [1, 1])
    np.testing.assert_allclose(mean[B], [[2.0], [2.0]])
    np.testing.assert_allclose(mean[B] @ shared_a, [[2.0, 4.0], [2.0, 4.0]])  # = mean(B_i A) by hand
    np.testing.assert_allclose(mean[B] @ shared_a, (b1 @ shared_a + b2 @ shared_a) / 2)
    assert product_error([{A: shared_a, B: b1}, {A: shared_a, B: b2}], [1, 1]) == {"layers.0.q_proj": 0.0}


def test_ffa_and_fedsa_refuse_the_half_they_must_not_receive():
    with pytest.raises(ValueError, match="only lora_B"):
        ffa([ONE], [1])
    with pytest.raises(ValueError, match="only lora_A"):
        fedsa([ONE], [1])


def test_fedsa_averages_only_a():
    mean = fedsa([{A: ONE[A]}, {A: TWO[A]}], [3, 1])
    assert set(mean) == {A}
    np.testing.assert_allclose(mean[A], [[0.75, 0.25]])


def test_shared_names_per_aggregation():
    names = [A, B]
    assert shared_names(names, "fedavg") == [A, B]
    assert shared_names(names, "ffa") == [B]
    assert shared_names(names, "fedsa") == [A]
    assert module_of(B) == "layers.0.q_proj"


def test_mismatched_updates_and_weights_are_errors():
    with pytest.raises(ValueError, match="other arrays"):
        aggregate("fedavg", [ONE, {A: ONE[A]}], [1, 1])
    with pytest.raises(ValueError, match="2 updates but 1 weights"):
        aggregate("fedavg", [ONE, TWO], [1])
    with pytest.raises(ValueError, match="positive sum"):
        aggregate("fedavg", [ONE], [0])
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate("median", [ONE], [1])  # type: ignore[arg-type]
