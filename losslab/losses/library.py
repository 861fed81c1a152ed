"""The named losses of the source papers, each written in the loss language.

Every hand-designed loss is a point of the search space: ``get_loss("focal")`` is an ordinary
:class:`~losslab.losses.spec.LossSpec` that a search backend can mutate. Conventions:

- per-class terms return ``[C]``; the engine reduces them as ``mean_c(w_c * L_c)``;
- distribution losses (CE and its relatives) carry a factor ``nc`` so that with uniform weights
  ``mean_c`` gives back the usual sum over classes: ``ce`` reduces to ``F.cross_entropy`` exactly,
  and ``focal`` with ``gamma=0`` equals ``ce`` (MONAI's ``FocalLoss(reduction="mean")`` also
  averages over classes and so is ``1/C`` of ours);
- the background is class 0 (``fg`` is 0 there);
- region losses (``dice``, ``iou``, ``tversky``, ``f_beta``, ``dl2``) give a class absent from
  the batch a loss of about 1 with a gradient of about ``eps / (sum_n p_c)``, as MONAI does: its
  false positives are hardly penalised. A candidate with ``absent_classes: ignore`` leaves such
  classes out of ``mean_c`` (see :func:`losslab.losses.spec.reduce`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from losslab.hints import did_you_mean
from losslab.losses.spec import CompoundLoss, LossSpec, parse_loss

__all__ = [
    "LIBRARY",
    "LibraryLoss",
    "UnusedParameterError",
    "get_loss",
    "list_losses",
    "route_parameters",
]

# Sudre's GDL weight 1 / (sum_n y)^2; a class absent from the batch takes the largest weight of
# the present ones, exactly as MONAI's GeneralizedDiceLoss replaces its infinite weight.
_GDL_PRESENT = "where(vsum(y) > 0, 1 / vsum(y) ** 2, 0)"
_GDL_WEIGHT = f"where(vsum(y) > 0, 1 / vsum(y) ** 2, cmax({_GDL_PRESENT}))"


@dataclass(frozen=True)
class LibraryLoss:
    """A named loss: its text (single term) or the names and weights of its terms (compound)."""

    name: str
    doc: str
    text: str | None = None
    parts: tuple[tuple[str, float], ...] = ()

    def build(self, **params: float) -> LossSpec | CompoundLoss:
        if self.text is not None:
            return parse_loss(self.text, **params)
        parts = [LIBRARY[part].build() for part, _ in self.parts]
        terms = route_parameters(parts, params, self.name)
        return CompoundLoss(self.name, terms, tuple(w for _, w in self.parts))


class UnusedParameterError(ValueError):
    """Parameters given to a multi-term loss that none of its terms uses.

    Attributes:
        owner: the loss they were given to.
        unused: the parameters no term uses, sorted.
        used: every parameter the terms do use, sorted.
    """

    def __init__(self, owner: str, unused: Iterable[str], used: Iterable[str]):
        self.owner, self.unused, self.used = owner, tuple(sorted(unused)), tuple(sorted(used))
        super().__init__(
            f"loss '{owner}' has no parameter(s) {', '.join(self.unused)}; its terms use: "
            + (", ".join(self.used) or "none")
        )


def route_parameters(
    terms: Iterable[LossSpec], params: Mapping[str, float], owner: str
) -> tuple[LossSpec, ...]:
    """The terms of a multi-term loss, each bound to the named parameters it uses.

    A parameter goes to every term whose expression uses it (``gamma`` to the focal term of
    ``dice_focal``, ``eps`` to every term that has one); a term keeps its own values for the
    others. ``owner`` names the loss in the error.

    Raises:
        UnusedParameterError: (a ``ValueError``) for parameters that no term uses, naming them
            and the parameters the terms do use.
        ValueError: a value out of its parameter's range (from :meth:`LossSpec.with_params`).
    """
    terms = tuple(terms)
    used = {name for term in terms for name in term.parameters}
    unused = set(params) - used
    if unused:
        raise UnusedParameterError(owner, unused, used)
    routed = []
    for term in terms:
        mine = {k: v for k, v in params.items() if k in term.parameters}
        routed.append(term.with_params(**mine) if mine else term)
    return tuple(routed)


_ENTRIES = [
    LibraryLoss(
        "ce",
        "Cross-entropy, per class: C * mean_n(-y_c log p_c). With class weights w the engine's "
        "mean_c(w_c * L_c) is (1/N) sum_n w_(y_n) (-log p_(y_n)), an average over all N voxels; "
        "torch.nn.functional.cross_entropy(weight=w) divides by the total weight "
        "sum_n w_(y_n) instead, so weighted values differ by N / sum_n w_(y_n) (the same "
        "direction, another scale); with uniform weights they are equal.",
        "nc * vmean(-y * logp)",
    ),
    LibraryLoss(
        "wce",
        "Weighted cross-entropy (Sudre et al. 2017, eq. WCE), multi-class form: each foreground "
        "class c is weighted by (N - sum_n y_c) / sum_n y_c, N the voxels of the batch, and the "
        "background keeps weight 1, so two classes give the paper's "
        "-1/N sum_n (w r_n log p_n + (1 - r_n) log(1 - p_n)). The paper prints sum_n p_n in "
        "that weight; we read it as the reference volume, as losslab does throughout.",
        "nc * (vmean(fg) * (csum(vsum(y)) - vsum(y)) / vsum(y) + 1 - vmean(fg)) * vmean(-y * logp)",
    ),
    LibraryLoss(
        "topk_ce",
        "TopK cross-entropy (Wu et al. 2016): per class, the mean of the largest k fraction of "
        "voxel losses.",
        "nc * topk_mean(-y * logp, k); k=0.1",
    ),
    LibraryLoss(
        "focal",
        "Focal loss (Lin et al. 2017): C * mean_n(-(1 - p_c)^gamma y_c log p_c).",
        "nc * vmean(-(1 - p) ** gamma * y * logp); gamma=2",
    ),
    LibraryLoss(
        "dice",
        "Soft Dice loss (Milletari et al. 2016), per class over batch and voxels; MONAI's "
        "DiceLoss(batch=True) with smooth_nr = smooth_dr = eps.",
        "1 - (2 * vsum(p * y) + eps) / (vsum(p) + vsum(y) + eps); eps=1e-5",
    ),
    LibraryLoss(
        "dl2",
        "Two-class Dice loss DL_2 (Sudre et al. 2017), each class against the rest.",
        "1 - (vsum(p * y) + eps) / (vsum(p + y) + eps) "
        "- (vsum((1 - p) * (1 - y)) + eps) / (vsum(2 - p - y) + eps); eps=1e-5",
    ),
    LibraryLoss(
        "iou",
        "Soft Jaccard (IoU) loss, written as MONAI's DiceLoss(jaccard=True) computes it.",
        "1 - (2 * vsum(p * y) + eps) / (2 * (vsum(p) + vsum(y) - vsum(p * y)) + eps); eps=1e-5",
    ),
    LibraryLoss(
        "tversky",
        "Tversky loss (Salehi et al. 2017): alpha weighs false positives, beta false negatives; "
        "defaults 0.3 / 0.7 from the paper.",
        "1 - (vsum(p * y) + eps) / (vsum(p * y) + alpha * vsum(p * (1 - y)) "
        "+ beta * vsum((1 - p) * y) + eps); alpha=0.3; beta=0.7; eps=1e-5",
    ),
    LibraryLoss(
        "f_beta",
        "Asymmetric similarity loss (Hashemi et al. 2018), the F-beta score: "
        "1 - (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP), beta=1.5.",
        "1 - ((1 + beta ** 2) * vsum(p * y) + eps) / ((1 + beta ** 2) * vsum(p * y) "
        "+ beta ** 2 * vsum((1 - p) * y) + vsum(p * (1 - y)) + eps); beta=1.5; eps=1e-5",
    ),
    LibraryLoss(
        "gdl",
        "Generalised Dice loss (Sudre et al. 2017), class weights 1 / (sum_n y_c)^2, "
        "class-coupled (a scalar, so the engine's class weights do not apply).",
        f"1 - (2 * csum({_GDL_WEIGHT} * vsum(p * y)) + eps) / "
        f"(csum({_GDL_WEIGHT} * (vsum(p) + vsum(y))) + eps); eps=1e-5",
    ),
    LibraryLoss(
        "ss",
        "Sensitivity-specificity loss (Brosch et al. 2015, as in Sudre et al. 2017), lam=0.05.",
        "lam * vsum((y - p) ** 2 * y) / (vsum(y) + eps) "
        "+ (1 - lam) * vsum((y - p) ** 2 * (1 - y)) / (vsum(1 - y) + eps); eps=1e-5; lam=0.05",
    ),
    LibraryLoss(
        "boundary",
        "Boundary loss (Kervadec et al. 2019): mean_n(phi_c p_c) with phi the signed distance to "
        "the target boundary, foreground classes only; usually added to a regional loss.",
        "vmean(fg * dist * p)",
    ),
    LibraryLoss(
        "asymmetric_focal",
        "Asymmetric focal loss (Li et al. 2020): focal modulation on the background only, so the "
        "rare foreground classes keep their full cross-entropy.",
        "nc * vmean(-y * logp * (fg + (1 - fg) * (1 - p) ** gamma)); gamma=2",
    ),
    LibraryLoss(
        "asymmetric_large_margin",
        "Asymmetric large-margin loss (Li et al. 2020): cross-entropy on logits whose target logit "
        "is lowered by a margin for foreground classes only.",
        "nc * vmean(-y * log_softmax(z - margin * y * fg)); margin=1",
    ),
    LibraryLoss(
        "dice_ce", "Dice + cross-entropy (MONAI's DiceCELoss).", parts=(("dice", 1.0), ("ce", 1.0))
    ),
    LibraryLoss(
        "dice_focal",
        "Dice + focal, the focal term over the softmax (C * mean_n(-(1 - p_c)^gamma y_c log p_c)). "
        "Not MONAI's DiceFocalLoss: its focal term is a sigmoid (one binary focal loss per "
        "channel) unless use_softmax is set, and it averages over classes, so its values differ.",
        parts=(("dice", 1.0), ("focal", 1.0)),
    ),
    LibraryLoss(
        "tversky_focal",
        "Tversky + focal (Abraham and Khan 2019 combine Tversky with a focal term).",
        parts=(("tversky", 1.0), ("focal", 1.0)),
    ),
]

LIBRARY: dict[str, LibraryLoss] = {entry.name: entry for entry in _ENTRIES}
ALIASES: dict[str, str] = {"asymmetric": "f_beta", "jaccard": "iou", "generalized_dice": "gdl"}


def list_losses() -> list[str]:
    """Names of every loss in the library (single and compound), sorted."""
    return sorted(LIBRARY)


def get_loss(name: str, **params: float) -> LossSpec | CompoundLoss:
    """A library loss by name, with parameters overriding its defaults.

    Single losses are :class:`LossSpec`; compound ones (``dice_ce``...) are :class:`CompoundLoss`.
    Both have ``.terms``.

    Raises:
        KeyError: for an unknown name, listing the known ones.
        ValueError: for a parameter the loss does not have, or a value out of range.
    """
    key = ALIASES.get(name, name)
    if key not in LIBRARY:
        hint = did_you_mean(name, [*LIBRARY, *ALIASES])
        raise KeyError(f"unknown loss '{name}'; {hint}known losses: {', '.join(list_losses())}")
    return LIBRARY[key].build(**params)
