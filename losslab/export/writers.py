"""The files of ``losslab export``: a Python module for MONAI loops, an nnU-Net v2 trainer.

Both folders hold ``candidate.json`` (readable by ``losslab train --candidate``) and, for a
candidate with learned terms, ``lossnets/<hash>.lossnet``. The generated code imports losslab
and nothing else of this machine: losslab must be installed where it runs.
"""

from __future__ import annotations

from pathlib import Path

from losslab.export.module import ExportedLoss
from losslab.export.source import ExportSource, copy_networks, network_files

__all__ = ["MONAI_MODULE", "nnunet_trainer_name", "write_monai", "write_nnunet"]

MONAI_MODULE = "losslab_loss.py"

_MONAI_TEMPLATE = '''"""The training objective losslab found: {name} (candidate {key}), from {origin}.

A loss module with MONAI's conventions: logits [B, C, *spatial] and labels [B, 1, *spatial]
(or one-hot [B, C, *spatial]) in, a scalar out. It needs only losslab installed::

    from losslab_loss import build_loss

    loss_function = build_loss(num_classes=NUM_CLASSES, epochs=EPOCHS)
    for epoch in range(EPOCHS):
        for i, batch in enumerate(train_loader):
            loss_function.set_progress(epoch * len(train_loader) + i, EPOCHS * len(train_loader))
            loss = loss_function(model(batch["image"]), batch["label"])
            ...
        loss_function.on_epoch_end(per_class_dice)  # validation Dice, one value per class

Without set_progress and on_epoch_end the loss stays the loss of the first step.
"""

from __future__ import annotations

from pathlib import Path

from losslab.export import load_loss

HERE = Path(__file__).resolve().parent
NUM_CLASSES = {num_classes!r}
FREQUENCIES = {frequencies!r}
BALANCING_FREQUENCIES = {balancing!r}


def build_loss(num_classes=NUM_CLASSES, *, epochs=1000, **options):
    """The loss for ``num_classes`` classes (background included) over ``epochs`` epochs."""
    if num_classes is None:
        raise ValueError("build_loss: give num_classes (the classes of your data, background included)")
    options.setdefault("frequencies", FREQUENCIES)
    options.setdefault("balancing_frequencies", BALANCING_FREQUENCIES)
    return load_loss(
        HERE / "candidate.json", num_classes, lossnets=HERE / "lossnets", epochs=epochs, **options
    )
'''

_NNUNET_TEMPLATE = '''"""nnU-Net v2 trainer with the training objective losslab found: {name} (candidate {key}),
from {origin}.

Install: copy this file into nnU-Net's trainer folder, printed by
    python -c "import nnunetv2, os; print(os.path.join(nnunetv2.__path__[0], 'training', 'nnUNetTrainer'))"
then train with
    nnUNetv2_train DATASET CONFIGURATION FOLD -tr {class_name}
losslab must be installed in nnU-Net's environment.
"""

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from losslab.export.nnunet_trainer import LosslabTrainerMixin


class {class_name}(LosslabTrainerMixin, nnUNetTrainer):
    losslab_candidate = {candidate!r}
    losslab_lossnets = {lossnets!r}
    losslab_frequencies = {frequencies!r}
    losslab_balancing_frequencies = {balancing!r}
'''


def nnunet_trainer_name(source: ExportSource) -> str:
    """``nnUNetTrainer_losslab_<first 8 hex digits of the candidate key>``."""
    return f"nnUNetTrainer_losslab_{source.candidate.key[:8]}"


def _common(source: ExportSource, out: Path) -> tuple[list[Path], Path | None]:
    files = network_files(source.candidate)  # a missing one is an error before any writing
    out.mkdir(parents=True, exist_ok=True)
    candidate_file = out / "candidate.json"
    candidate_file.write_text(source.candidate.to_json() + "\n")
    networks = copy_networks(files, out / "lossnets")
    return [candidate_file, *networks], (out / "lossnets").resolve() if networks else None


def _fields(source: ExportSource) -> dict[str, object]:
    return {
        "name": source.candidate.name or source.candidate.describe(),
        "key": source.candidate.key,
        "origin": source.origin,
        "frequencies": source.frequencies,
        "balancing": source.balancing_frequencies,
    }


def write_monai(source: ExportSource, out: str | Path) -> list[Path]:
    """Write ``losslab_loss.py`` (``build_loss(num_classes, epochs=...)``), ``candidate.json``
    and the learned networks into ``out``; return the files written."""
    folder = Path(out)
    written, _ = _common(source, folder)
    module = folder / MONAI_MODULE
    module.write_text(_MONAI_TEMPLATE.format(num_classes=source.num_classes, **_fields(source)))
    return [module, *written]


def write_nnunet(source: ExportSource, out: str | Path) -> list[Path]:
    """Write ``nnUNetTrainer_losslab_<key>.py``, ``candidate.json`` and the learned networks
    into ``out``; return the files written (the trainer first).

    The trainer holds the candidate itself and the absolute path of ``out/lossnets``.

    Raises:
        ValueError: the candidate's class schedule needs class frequencies that ``source``
            does not have (export it from its study).
    """
    if source.num_classes is not None:  # the check ExportedLoss makes, before writing
        ExportedLoss(
            source.candidate,
            source.num_classes,
            frequencies=source.frequencies,
            balancing_frequencies=source.balancing_frequencies,
        )
    elif source.frequencies is None:
        _check_frequencies_not_needed(source)
    folder = Path(out)
    written, lossnets = _common(source, folder)
    class_name = nnunet_trainer_name(source)
    trainer = folder / f"{class_name}.py"
    trainer.write_text(
        _NNUNET_TEMPLATE.format(
            class_name=class_name,
            candidate=source.candidate.to_json(),
            lossnets=None if lossnets is None else str(lossnets),
            **_fields(source),
        )
    )
    return [trainer, *written]


def _check_frequencies_not_needed(source: ExportSource) -> None:
    from losslab.export.module import needs_frequencies

    spec = source.candidate.class_schedule
    if needs_frequencies(spec):
        raise ValueError(
            f"the class schedule {spec.name!r} reads the class frequencies of the training data, "
            f"which {source.origin} does not give: export the study that found it"
        )
