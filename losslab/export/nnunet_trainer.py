"""What an exported nnU-Net v2 trainer adds to ``nnUNetTrainer``: losslab's loss and its schedules.

``losslab export ... --to nnunet`` writes a file that defines
``class nnUNetTrainer_losslab_<key>(LosslabTrainerMixin, nnUNetTrainer)`` with the candidate in
class attributes. The mixin

- builds the :class:`~losslab.export.module.ExportedLoss` in ``_build_loss`` and wraps it for
  deep supervision the way nnU-Net wraps its own loss (``DeepSupervisionWrapper`` with
  nnU-Net's halving, normalised weights; the lowest output weighs 0, or 1e-6 under DDP
  without ``torch.compile``; nnU-Net's data loader downsamples the targets);
- tells the loss the step before every ``train_step`` (``set_progress``: term and parameter
  schedules, learned terms' progress);
- feeds nnU-Net's per-class pseudo Dice of each epoch's validation to the class schedule in
  ``on_epoch_end`` (the foreground classes; the background is not scored).

nnU-Net itself is imported only by the generated file (and here inside ``_build_loss``), so
losslab does not depend on it. Not covered: region-based training and ignore labels (refused
with a message), resuming a stopped training (``--c``: the class schedule starts again), and
the final validation and inference, which do not use the loss.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from losslab.candidate import Candidate
from losslab.export.deep_supervision import deep_supervision_weights
from losslab.export.module import ExportedLoss

__all__ = ["LosslabTrainerMixin"]


class LosslabTrainerMixin:
    """Mixed in before ``nnUNetTrainer``; a generated subclass sets the class attributes.

    Attributes:
        losslab_candidate: the candidate's JSON text.
        losslab_lossnets: a folder of its learned loss networks, if it has any.
        losslab_frequencies: class frequencies of the training data (a learned rule reading
            ``freq``), or ``None``.
        losslab_balancing_frequencies: Hegde's class frequencies (``median_frequency``,
            ``inverse_frequency``), or ``None``.
    """

    losslab_candidate: ClassVar[str] = ""
    losslab_lossnets: ClassVar[str | None] = None
    losslab_frequencies: ClassVar[list[float] | None] = None
    losslab_balancing_frequencies: ClassVar[list[float] | None] = None

    losslab_loss: ExportedLoss
    _losslab_iteration: int = 0

    def _build_loss(self) -> Any:
        from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

        from losslab.losses import add_search_folder

        name = type(self).__name__
        labels = self.label_manager
        if labels.has_regions:
            raise ValueError(
                f"{name}: region-based training (tuples of labels in dataset.json 'labels') is "
                "not supported: losslab's losses read softmax probabilities of exclusive classes"
            )
        if labels.has_ignore_label:
            raise ValueError(f"{name}: datasets with an 'ignore' label are not supported")
        if self.losslab_lossnets:
            add_search_folder(self.losslab_lossnets)
        self.losslab_loss = ExportedLoss(
            Candidate.from_json(self.losslab_candidate),
            labels.num_segmentation_heads,
            epochs=self.num_epochs,
            frequencies=self.losslab_frequencies,
            balancing_frequencies=self.losslab_balancing_frequencies,
        )
        loss: Any = self.losslab_loss
        if self.enable_deep_supervision:
            scales = self._get_deep_supervision_scales()
            last = 1e-6 if self.is_ddp and not self._do_i_compile() else 0.0
            loss = DeepSupervisionWrapper(loss, deep_supervision_weights(len(scales), last=last))
        return loss

    def on_train_start(self) -> None:
        super().on_train_start()
        if self.current_epoch > 0:
            self.print_to_log_file(
                f"losslab: training continues at epoch {self.current_epoch}; the class schedule "
                "starts again from its first epoch"
            )

    def on_train_epoch_start(self) -> None:
        self._losslab_iteration = 0
        super().on_train_epoch_start()

    def train_step(self, batch: dict) -> dict:
        iterations = self.num_iterations_per_epoch
        step = self.current_epoch * iterations + self._losslab_iteration
        self.losslab_loss.set_progress(step, self.num_epochs * iterations)
        self._losslab_iteration += 1
        return super().train_step(batch)

    def on_epoch_end(self) -> None:
        dice = self.logger.get_value("dice_per_class_or_region", step=-1)
        if self.losslab_loss.context.epoch < self.losslab_loss.epochs:
            weights = self.losslab_loss.on_epoch_end([float(d) for d in dice])
            shown = [None if math.isnan(w) else round(w, 4) for w in weights.tolist()]
            self.print_to_log_file(f"losslab class weights: {shown}")
        super().on_epoch_end()
