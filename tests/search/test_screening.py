"""The loss screen and its probe: degenerate losses are rejected, the library's losses pass,
duplicates by canonical text and by gradient are found, and the screen's memory survives a
JSON round trip."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
import torch

from losslab.data import load_dataset
from losslab.losses import get_loss, list_losses, parse_loss
from losslab.losses.library import LIBRARY
from losslab.losses.nodes import BinOp, Call, Neg, Var
from losslab.search.gp.probe import Probe, foreground_dice, raw_logit_dice
from losslab.search.gp.screening import MIN_END, MIN_GAIN, STAGES, LossScreen

CE = "nc * vmean(-y * logp)"
DICE = "1 - (2 * vsum(p * y) + eps) / (vsum(p) + vsum(y) + eps); eps=1e-5"

# Checked before DEGENERATE, so that rewrites of them in the list are duplicates.
PRIMED = [CE, DICE]

# Losses that must not be trained; the comment is the stage expected to catch each.
DEGENERATE = [
    "1",  # terminals: a constant
    "nc",  # terminals
    "-(1 - (2 * vsum(p * y) + 1e-5) / (vsum(p) + vsum(y) + 1e-5))",  # no_improvement: -dice
    "vmean(y)",  # terminals: target only
    "vsum(y)",  # terminals
    "vmean(y) * cmean(w)",  # terminals: the class weights are no prediction
    "vmean(p)",  # terminals: prediction only
    "cmean(vmean(logp))",  # terminals
    "vmean(fg * p)",  # terminals: fg is not the target
    "vmean(where(p > 0.5, y, 0))",  # terminals: p only in a condition (no gradient)
    "vmean(-p * (1 - y))",  # no_improvement: rewards false positives
    "vmean(-z * (1 - y))",  # no_improvement: raises the wrong logits
    "vmean(p * y)",  # no_improvement: minimises the overlap
    "vmean(where(y > 0.5, p, 0))",  # no_improvement: the same, written with where
    "vmean(y * p ** 2)",  # no_improvement
    "vmean(y * z)",  # no_improvement: lowers the target logits
    "vmean(y * exp(z))",  # no_improvement
    "vmean(y * abs(z))",  # no_improvement: pins the target logits at 0
    "topk_mean(y * p, 0.1)",  # no_improvement
    "nc * vmean(y * logp)",  # no_improvement: -ce
    "vmean(y * logp) * vmean(y)",  # no_improvement: -ce, weighted by class frequency
    "vmean(p * 0 * y)",  # degenerate: constant 0
    "vmean(p - p) + vmean(y)",  # degenerate: constant
    "vmean(y * p) - vmean(y * p)",  # degenerate: constant
    "cmean(vmean(p)) * vmean(y)",  # degenerate: sum_c p_c = 1
    "csum(vsum(p)) * vmean(y)",  # degenerate: constant, its gradient is rounding noise
    "vmean(dist * 0 + p)",  # degenerate: the target enters with weight 0
    "vmean(y * clamp(p, 0.9, 1))",  # degenerate: flat at near-uniform predictions
    "vmean(-y * logp) * 1e-30",  # degenerate: below float32
    "nc*vmean(-y*logp)",  # duplicate of CE
    "1 - (2*vsum(p*y) + eps) / (vsum(p) + vsum(y) + eps)",  # duplicate of DICE (default eps)
    "vmean(-y * logp) * nc + 1",  # gradient_duplicate of CE
]

# Losses whose optimum is not the correct segmentation: they raise the Dice of free logits for a
# while, or tie with the truth, and trained they end at Dice near 0. Each must be rejected (the
# comment says why it is degenerate).
WRONG_OPTIMUM = [
    # recalls the foreground alone: every voxel called foreground is as good as the truth
    "1 - (vsum(fg * p * y) + 1e-5) / (vsum(fg * y) + 1e-5)",
    # soft Dice on the raw logits: a pole where vsum(z) crosses -vsum(y), unbounded below
    "1 - (2 * vsum(z * y) + 1e-5) / (vsum(z) + vsum(y) + 1e-5)",
    # Tversky with a negative false-positive weight: rewards false positives
    "1 - (vsum(p * y) + 1e-5) / (vsum(p * y) - 0.3 * vsum(p * (1 - y)) "
    "+ 0.7 * vsum((1 - p) * y) + 1e-5)",
    # cross-entropy of the background alone: all background is as good as the truth
    "nc * vmean(-(1 - fg) * y * logp)",
    # Dice of the background alone: the foreground classes may be confused at no cost
    "1 - (2 * vsum((1 - fg) * p * y) + 1e-5) / (vsum((1 - fg) * (p + y)) + 1e-5)",
    # rewards confidence in the most frequent class: one class everywhere
    "-vmean(p ** 2) * vmean(y)",
    # cross-entropy of every class weighted by its frequency: the class shares everywhere
    "nc * vmean(-logp) * vmean(y)",
    # unbounded below: raises the target logits without limit
    "vmean(-y * z)",
    # unbounded below: cross-entropy with a reward for large logits of any class
    "nc * vmean(-y * logp) - 0.1 * vmean(z * z)",
    # soft Dice of 1 - p: the anti-segmentation
    "1 - (2 * vsum((1 - p) * y) + 1e-5) / (vsum(1 - p) + vsum(y) + 1e-5)",
    # recall of the foreground with a reward for its false positives: foreground everywhere
    "vmean(fg * y * (1 - p)) - vmean(fg * p * (1 - y))",
    # regression of the logits onto the wrong classes
    "vmean((z - 5 * (1 - y)) ** 2)",
]

# Losses of the literature, written in the loss language: none may be rejected.
_DSC = "(2 * vsum(p * y) + eps) / (vsum(p) + vsum(y) + eps)"
_TP, _FP = "vsum(p * y)", "vsum(p * (1 - y))"
_FN, _TN = "vsum((1 - p) * y)", "vsum((1 - p) * (1 - y))"
LITERATURE = [
    # log-cosh Dice (Jadon 2020)
    f"log((exp(1 - {_DSC}) + exp({_DSC} - 1)) / 2); eps=1e-5",
    # exponential logarithmic loss (Wong et al. 2018), w_dice 0.8, w_ce 0.2, gamma 0.3
    f"0.8 * (-log({_DSC})) ** gamma + 0.2 * nc * vmean(y * (-logp) ** gamma); eps=1e-5; gamma=0.3",
    # combo loss (Taghanaki et al. 2019), alpha 0.5, beta 0.5
    f"0.5 * vmean(-(0.5 * y * logp + 0.5 * (1 - y) * log(1 - p))) + 0.5 * (1 - {_DSC}); eps=1e-5",
    # Poly-1 (Leng et al. 2022), epsilon 1
    "nc * vmean(y * (-logp + 1 - p))",
    # MCC loss (Abhishek and Hamarneh 2021)
    f"1 - ({_TP} * {_TN} - {_FP} * {_FN}) / sqrt(({_TP} + {_FP}) * ({_TP} + {_FN}) "
    f"* ({_TN} + {_FP}) * ({_TN} + {_FN}))",
    # focal Tversky (Abraham and Khan 2019), alpha 0.7 on false negatives, gamma 0.75
    f"(1 - ({_TP} + eps) / ({_TP} + 0.3 * {_FP} + 0.7 * {_FN} + eps)) ** gamma; eps=1e-5; "
    "gamma=0.75",
    # squared soft Dice (Milletari et al. 2016)
    "1 - (2 * vsum(p * y) + eps) / (vsum(p ** 2) + vsum(y ** 2) + eps); eps=1e-5",
    # label smoothing (Szegedy et al. 2016), 0.1: its optimum is not one-hot, but right
    "nc * vmean(-(0.9 * y + 0.1 / nc) * logp)",
    # soft Jaccard with the union as max(p, y), a Lovasz-like surrogate (Berman et al. 2018)
    "1 - (vsum(p * y) + eps) / (vsum(max(p, y)) + eps); eps=1e-5",
    # mean absolute error and Brier score
    "vmean(abs(y - p))",
    "vmean((y - p) ** 2)",
    # Dice + CE written as one expression
    f"nc * vmean(-y * logp) + 1 - {_DSC}; eps=1e-5",
]

# Compound library losses (dice_ce, dice_focal, tversky_focal) are left out: their terms are
# single entries of the library, checked here one by one.
SINGLE = [name for name in list_losses() if LIBRARY[name].text is not None]


@pytest.fixture(scope="module")
def phantom_probe() -> Probe:
    dataset = load_dataset("phantom", cases=4, shape=(24, 24, 24), seed=0)
    return Probe.from_dataset(dataset, patches=2, patch_size=(16, 16, 16), seed=0)


@pytest.fixture(scope="module", params=["synthetic", "phantom"])
def probe(request, phantom_probe) -> Probe:
    return Probe.synthetic() if request.param == "synthetic" else phantom_probe


def _table(rows) -> str:
    return "\n".join(f"  {text:60s} {v.stage or 'passed':18s} {v.reason}" for text, v in rows)


# -- the probe -----------------------------------------------------------------------------


def test_synthetic_probe_is_imbalanced_and_deterministic():
    probe = Probe.synthetic(num_classes=4, shape=(16, 16, 16), batch=2, seed=0)
    assert probe.logits.shape == (2, 4, 16, 16, 16) and probe.logits.dtype == torch.float32
    assert probe.labels.shape == (2, 16, 16, 16) and probe.labels.dtype == torch.int64
    shares = torch.bincount(probe.labels.reshape(-1), minlength=4) / probe.labels.numel()
    assert shares[0] > 0.7 and 0.05 < shares[1] < 0.25 and 0 < shares[3] < 0.03
    for image in probe.labels:  # every class in every image
        assert set(torch.unique(image).tolist()) == {0, 1, 2, 3}
    again = Probe.synthetic(seed=0)
    assert torch.equal(again.labels, probe.labels) and torch.equal(again.logits, probe.logits)
    assert not torch.equal(Probe.synthetic(seed=1).labels, probe.labels)
    assert Probe.synthetic(num_classes=7).labels.max() == 6


def test_dataset_probe_holds_rare_classes(phantom_probe):
    dataset = load_dataset("phantom", cases=4, shape=(24, 24, 24), seed=0)
    assert phantom_probe.labels.shape == (2, 16, 16, 16)
    assert phantom_probe.logits.shape == (2, dataset.num_classes, 16, 16, 16)
    counts = torch.bincount(phantom_probe.labels.reshape(-1), minlength=dataset.num_classes)
    assert (counts[1:] > 0).sum() >= 4  # several organs
    assert ((counts[1:] > 0) & (counts[1:] < 0.01 * counts.sum())).any()  # a rare one among them
    again = Probe.from_dataset(dataset, patches=2, patch_size=(16, 16, 16), seed=0)
    assert torch.equal(again.labels, phantom_probe.labels)
    big = Probe.from_dataset(dataset, patches=3, patch_size=(32, 20, 8), seed=5)
    assert big.labels.shape == (3, 32, 20, 8)  # padded with background where the case is smaller


def test_raw_logit_dice():
    probe = Probe.synthetic()
    start, end = raw_logit_dice(get_loss("dice"), probe)
    assert start == foreground_dice(probe.logits, probe.labels) and end > start + 0.5
    assert raw_logit_dice(get_loss("dice"), probe) == (start, end)  # deterministic
    assert LossScreen(probe).check(get_loss("dice")).gain == end - start  # the screen's run
    assert raw_logit_dice(parse_loss("vmean(p * y)"), probe)[1] < start
    assert raw_logit_dice(get_loss("dice_ce"), probe)[1] > start + 0.5  # compound: terms summed

    class Exploding:  # a non-finite loss stops the run: no gain
        def compile(self):
            return lambda logits, labels: (logits * float("nan")).sum()

    assert raw_logit_dice(Exploding(), probe) == (start, start)


def test_foreground_dice_counts_present_classes_only():
    labels = torch.tensor([[0, 1, 1, 0]])
    logits = torch.nn.functional.one_hot(labels, 3).permute(0, 2, 1).float()
    assert foreground_dice(logits, labels) == 1.0  # class 2 absent: left out
    assert foreground_dice(logits, torch.zeros_like(labels)) == 0.0


# -- the screen ----------------------------------------------------------------------------


def test_library_losses_all_pass(probe):
    screen = LossScreen(probe)
    started = time.perf_counter()
    rows = [(name, screen.check(get_loss(name))) for name in SINGLE]
    seconds = (time.perf_counter() - started) / len(SINGLE)
    gains = {name: verdict.gain for name, verdict in rows}
    print(f"\nlibrary on the probe ({seconds:.2f} s per check):\n{_table(rows)}")
    failed = [(n, v) for n, v in rows if not v.passed]
    assert not failed, f"library losses rejected:\n{_table(failed)}"
    assert len({v.gradient_hash for _, v in rows}) == len(SINGLE)
    weakest = min(gains, key=gains.get)
    assert gains[weakest] > 8 * MIN_GAIN, f"{weakest} gains only {gains[weakest]:.3f}: {gains}"


def test_degenerate_losses_are_rejected(probe):
    assert len(DEGENERATE) >= 20
    screen = LossScreen(probe)
    for text in PRIMED:
        assert screen.check(text).passed
    rows = [(text, screen.check(text)) for text in DEGENERATE]
    rejected = [v for _, v in rows if not v.passed]
    per_stage = Counter(v.stage for v in rejected)
    message = f"per stage {dict(per_stage)}:\n{_table(rows)}"
    print("\n" + message)
    assert len(rejected) >= 0.95 * len(DEGENERATE), message
    assert set(per_stage) <= set(STAGES)
    assert {"terminals", "degenerate", "no_improvement", "duplicate"} <= set(per_stage)
    assert screen.counts["passed"] == len(PRIMED) + len(DEGENERATE) - len(rejected)


def test_losses_with_a_wrong_optimum_are_rejected(probe):
    assert len(WRONG_OPTIMUM) >= 8
    screen = LossScreen(probe)
    rows = [(text, screen.check(text)) for text in WRONG_OPTIMUM]
    passed = [(t, v) for t, v in rows if v.passed]
    print(f"\nper stage {dict(Counter(v.stage for _, v in rows))}:\n{_table(rows)}")
    assert not passed, f"degenerate losses passed:\n{_table(passed)}"


def test_literature_losses_pass(probe):
    assert len(LITERATURE) >= 8
    screen = LossScreen(probe)
    started = time.process_time()
    rows = [(text, screen.check(text)) for text in LITERATURE]
    seconds = (time.process_time() - started) / len(LITERATURE)
    print(f"\nliterature on the probe ({seconds:.2f} s CPU per check):\n{_table(rows)}")
    failed = [(t, v) for t, v in rows if not v.passed]
    assert not failed, f"literature losses rejected:\n{_table(failed)}"


def test_wrong_optimum_reasons():
    screen = LossScreen(Probe.synthetic())
    recall = screen.check(WRONG_OPTIMUM[0])
    assert recall.stage == "wrong_optimum" and recall.gain > MIN_GAIN  # raised, not high
    assert recall.reason.endswith(f"ends below {MIN_END:.2f}")
    # each test of the optimum on its own, past the end Dice's
    lenient = LossScreen(Probe.synthetic(), min_end=0.0)
    for text, reason in [
        (WRONG_OPTIMUM[0], "to the truth with the background as class 1"),
        (WRONG_OPTIMUM[1], "prefers a point of its raw-logit run"),
        (WRONG_OPTIMUM[3], "does not prefer the true segmentation (0) to all background (0)"),
        (WRONG_OPTIMUM[4], "to the truth with the foreground classes merged"),
        (WRONG_OPTIMUM[7], "unbounded below"),
        (WRONG_OPTIMUM[8], "unbounded below"),
    ]:
        verdict = lenient.check(text)
        assert verdict.stage == "wrong_optimum" and reason in verdict.reason, (text, verdict)
    assert lenient.check(LITERATURE[7]).passed  # label smoothing: its optimum is right


def test_terminal_reasons():
    screen = LossScreen(Probe.synthetic())
    assert "no target" in screen.check("vmean(fg * p)").reason
    assert "condition" in screen.check("vmean(where(p > 0.5, y, 0))").reason
    assert screen.check("vmean(where(y > 0.5, -logp, 0))").passed  # y in a condition is fine
    assert screen.check(get_loss("boundary")).passed  # dist is the target


def test_gradient_duplicates_name_the_first_loss():
    screen = LossScreen(Probe.synthetic())
    first = screen.check(CE)
    assert first.passed and first.gradient_hash
    for variant in (
        "vmean(-y * logp) * nc",
        "nc * vmean(-(y * logp))",
        "3 * nc * vmean(-y * logp)",
    ):
        verdict = screen.check(variant)
        assert verdict.stage == "gradient_duplicate", (variant, verdict)
        assert verdict.same_as == str(parse_loss(CE)) and verdict.spec == parse_loss(variant)
    assert screen.check(DICE).passed
    twice = screen.check("2 * (1 - (2 * vsum(p * y) + 1e-5) / (vsum(p) + vsum(y) + 1e-5))")
    assert twice.stage == "gradient_duplicate" and twice.same_as == str(parse_loss(DICE))
    for different in ("nc * vmean(-(1 - p) ** 2 * y * logp)", "log(1 + nc * vmean(-y * logp))"):
        assert screen.check(different).passed, different  # focal; a non-linear transform of CE
    assert screen.check(CE).stage == "duplicate"
    assert screen.check("nc * vmean(-(y * logp))").same_as == str(parse_loss(CE))  # cached
    assert screen.counts == Counter(passed=4, gradient_duplicate=5, duplicate=1)


def test_state_dict_round_trip_keeps_duplicates():
    probe = Probe.synthetic()
    screen = LossScreen(probe)
    for text in (CE, DICE, "vmean(p * y)", "3 * nc * vmean(-y * logp)"):
        screen.check(text)
    state = json.loads(json.dumps(screen.state_dict()))
    restored = LossScreen(probe)
    restored.load_state_dict(state)
    assert restored.seen(str(parse_loss(CE))) and restored.seen("nc*vmean(-y*logp)")
    assert not restored.seen("vmean(p * y)")  # rejected, not passed
    assert restored.counts == screen.counts
    assert restored.check(CE).stage == "duplicate"
    rescaled = restored.check("5 * (1 - (2 * vsum(p * y) + 1e-5) / (vsum(p) + vsum(y) + 1e-5))")
    assert rescaled.stage == "gradient_duplicate" and rescaled.same_as == str(parse_loss(DICE))
    cached = restored.check("vmean(p * y)")  # from the cache
    assert cached.stage == "no_improvement" and cached.gain < 0
    assert restored.check("3 * nc * vmean(-y * logp)").same_as == str(parse_loss(CE))
    assert restored.state_dict()["passed"] == screen.state_dict()["passed"]

    empty = LossScreen(probe)
    empty.load_state_dict({})  # a search's first generation
    assert not empty.seen(str(parse_loss(CE))) and not empty.counts
    other = LossScreen(Probe.synthetic(seed=3))
    with pytest.warns(UserWarning, match="probe"):
        other.load_state_dict(state)
    assert other.check(CE).stage == "duplicate"  # canonical texts hold on any probe
    with pytest.raises(ValueError, match="version"):
        other.load_state_dict({"version": 99})


def test_screen_is_deterministic():
    texts = [CE, DICE, "vmean(p * y)", "vmean(p * 0 * y)", "vmean(-y * logp) * nc + 1"]
    texts += ["nc * vmean(-(1 - p) ** 2 * y * logp)", "vmean(fg * dist * p)"]
    runs = []
    for _ in range(2):
        screen = LossScreen(Probe.synthetic())
        runs.append([screen.check(t) for t in texts])
    first, second = runs
    assert [(v.stage, v.reason, v.same_as, v.gradient_hash) for v in first] == [
        (v.stage, v.reason, v.same_as, v.gradient_hash) for v in second
    ]


def test_check_never_raises():
    screen = LossScreen(Probe.synthetic())
    for bad in ("vmean(y*(", "vmean(q)", "p * y", "vmean(p); gamma=2", None, 42):
        verdict = screen.check(bad)
        assert verdict.stage == "invalid" and verdict.spec is None, (bad, verdict)
    assert screen.check(get_loss("dice_ce")).stage == "invalid"  # compound: screen its terms
    tree = Call("vmean", (BinOp("*", Neg(Var("y")), Var("logp")),))
    assert screen.check(BinOp("*", Var("nc"), tree)).passed  # a bare tree: CE
    assert screen.check(CE).stage == "duplicate"
    assert screen.check(Var("p")).stage == "invalid"  # a voxel tensor is no loss

    class Broken:
        def compile(self):
            raise RuntimeError("boom")

    assert LossScreen(Probe.synthetic()).check(Broken()).stage == "invalid"
    assert screen.counts["invalid"] == 8
