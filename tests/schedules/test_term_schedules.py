"""Term schedules: Hegde's ramp and step (Hegde et al.), Rebalance, SoftAdapt and CoV (Hun 2021)."""

from __future__ import annotations

import math

import pytest
import torch

from losslab.schedules import CoVWeighting, LinearRamp, Rebalance, SoftAdapt, StepSwitch


def close(actual, expected, tol=1e-6):
    assert actual.tolist() == pytest.approx(expected, abs=tol)


def test_ramp_between_start_and_end():
    ramp = LinearRamp(start=0.2, end=0.6)  # progress = step / 10
    close(ramp.step(0, 11), [1, 0])
    close(ramp.step(2, 11), [1, 0])
    close(ramp.step(4, 11), [0.5, 0.5])
    close(ramp.step(5, 11), [0.25, 0.75])
    close(ramp.step(8, 11), [0, 1])


def test_step_switch():
    step = StepSwitch(at=0.5)
    close(step.step(4, 11), [1, 0])
    close(step.step(5, 11), [0, 1])


def test_rebalance_constant_increment_reaches_one_at_last_step():
    r = Rebalance()
    assert [r.step(t, 5)[1].item() for t in range(5)] == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    with pytest.raises(ValueError, match="num_terms=2"):
        Rebalance(3)


def softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


HISTORY = [[1.0, 2.0], [0.8, 2.5], [0.7, 2.9]]


def feed(schedule, rows):
    return [schedule.step(t, 100, torch.tensor(row)) for t, row in enumerate(rows)]


def test_softadapt_plain_uses_last_difference():
    out = feed(SoftAdapt(2, beta=0.1), HISTORY[:2])
    close(out[0], [0.5, 0.5])  # not enough history
    close(out[1], softmax([0.1 * -0.2, 0.1 * 0.5]))
    close(out[1], [0.482507, 0.517493])


def test_softadapt_loss_weighted():
    out = feed(SoftAdapt(2, beta=0.1, loss_weighted=True), HISTORY[:2])
    raw = [0.8 * math.exp(-0.02), 2.5 * math.exp(0.05)]
    close(out[1], [r / sum(raw) for r in raw])
    close(out[1], [0.229801, 0.770199])


def test_softadapt_normalized_slopes():
    out = feed(SoftAdapt(2, beta=0.1, normalized=True), HISTORY[:2])
    close(out[1], softmax([0.1 * -0.2 / 0.7, 0.1 * 0.5 / 0.7]))


def test_softadapt_window_three_mean_slope():
    out = feed(SoftAdapt(2, beta=1.0, window=3), HISTORY)
    close(out[1], [0.5, 0.5])
    close(out[2], softmax([(0.7 - 1.0) / 2, (2.9 - 2.0) / 2]))


def test_cov_uniform_first_two_steps_then_cov_of_loss_ratios():
    out = feed(CoVWeighting(2), [[2.0, 4.0], [1.0, 3.0], [5.0, 5.0]])
    close(out[0], [0.5, 0.5])
    close(out[1], [0.5, 0.5])
    # l(0) = 1, l(1) = L(1)/L(0) = [0.5, 0.75]: mean [0.75, 0.875], population std [0.25, 0.125]
    # cov = [1/3, 1/7] -> normalised [0.7, 0.3]
    close(out[2], [0.7, 0.3])


def test_cov_third_step_uses_running_mean_of_losses():
    out = feed(CoVWeighting(2), [[2.0, 4.0], [1.0, 3.0], [3.0, 7.0], [1.0, 1.0]])
    # l(2) = L(2) / mean(L(0), L(1)) = [3/1.5, 7/3.5] = [2, 2]
    ls = [[1.0, 0.5, 2.0], [1.0, 0.75, 2.0]]
    cov = []
    for xs in ls:
        mu = sum(xs) / 3
        sd = math.sqrt(sum((x - mu) ** 2 for x in xs) / 3 + 1e-8)
        cov.append(sd / mu)
    close(out[3], [c / sum(cov) for c in cov])


def test_adaptive_schedules_need_term_values():
    with pytest.raises(ValueError, match="term_values"):
        SoftAdapt(2).step(0, 10, None)
    with pytest.raises(ValueError, match="3 entries"):
        CoVWeighting(3).step(0, 10, torch.ones(2))


# A positive Dice-like term beside a boundary-like term: 0 on the first (background-only) batch,
# then negative and falling as the prediction moves inside the target.
SIGNED_HISTORY = [
    [0.9, 0.0],
    [0.85, -0.1],
    [0.8, -0.3],
    [0.7, -0.5],
    [0.72, 0.0],
    [0.6, -0.8],
    [0.5, -1.0],
]
SIGNED_SCHEDULES = {
    "softadapt": lambda: SoftAdapt(2, beta=1.0),
    "softadapt_loss_weighted": lambda: SoftAdapt(2, beta=1.0, loss_weighted=True),
    "softadapt_window3_both": lambda: SoftAdapt(
        2, beta=1.0, window=3, loss_weighted=True, normalized=True
    ),
    "cov": lambda: CoVWeighting(2),
    "cov_decay0": lambda: CoVWeighting(2, mean_decay=0.0),
    "cov_decay09": lambda: CoVWeighting(2, mean_decay=0.9),
}


@pytest.mark.parametrize("name", sorted(SIGNED_SCHEDULES))
def test_signed_or_zero_terms_give_finite_non_negative_weights_summing_to_one(name):
    for t, w in enumerate(feed(SIGNED_SCHEDULES[name](), SIGNED_HISTORY)):
        assert torch.isfinite(w).all(), (t, w)
        assert (w >= 0).all(), (t, w)
        assert w.sum().item() == pytest.approx(1.0, abs=1e-6), (t, w)


def test_all_zero_terms_keep_softadapt_loss_weighted_finite():
    out = feed(SoftAdapt(2, loss_weighted=True), [[0.0, 0.0], [0.0, 0.0]])
    close(out[1], [0.5, 0.5])


def test_softadapt_loss_weighted_uses_the_magnitude_of_a_negative_term():
    # equal slopes (-0.1): the weights are |L| normalised, [0.9, 0.1], not [0.9, -0.1] / 0.8
    out = feed(SoftAdapt(2, loss_weighted=True), [[1.0, 0.0], [0.9, -0.1]])
    close(out[1], [0.9, 0.1])


def test_cov_ratio_of_a_term_that_starts_at_zero_is_one_until_it_has_a_scale():
    out = feed(CoVWeighting(2), [[1.0, 0.0], [0.5, -0.1], [0.25, -0.3], [1.0, 1.0]])
    # term 1 has mean |L| = 0 at step 1: l = 1 there; at step 2 l = 0.3 / mean(0, 0.1) = 6
    ls = [[1.0, 0.5], [1.0, 1.0]]
    cov = []
    for xs in ls:
        mu = sum(xs) / 2
        cov.append(math.sqrt(sum((x - mu) ** 2 for x in xs) / 2 + 1e-8) / mu)
    close(out[2], [c / sum(cov) for c in cov])
    ls = [[1.0, 0.5, 0.25 / 0.75], [1.0, 1.0, 0.3 / 0.05]]
    cov = []
    for xs in ls:
        mu = sum(xs) / 3
        cov.append(math.sqrt(sum((x - mu) ** 2 for x in xs) / 3 + 1e-8) / mu)
    close(out[3], [c / sum(cov) for c in cov])


def test_eps_must_be_positive():
    with pytest.raises(ValueError, match="eps"):
        CoVWeighting(2, eps=0.0)
