"""The exported nnU-Net v2 trainer inside nnU-Net itself: a phantom in nnU-Net's raw layout is
planned and preprocessed by nnU-Net's command, the trainer is found by nnU-Net's lookup and
trains a few iterations on the CPU, and its class schedule (TCF) changes the weights when the
scripted pseudo Dice crosses the threshold. Skipped without nnunetv2 (the ``nnunet`` extra)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from losslab.candidate import Candidate, ScheduleSpec
from losslab.cli.main import main
from losslab.data import write_phantom_nnunet
from losslab.export import ExportedLoss, deep_supervision_weights, downsample_target

try:
    import nnunetv2
    from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import (
        DownsampleSegForDSTransform,
    )
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
except ImportError:  # pragma: no cover - the extra is not installed
    pytest.skip(
        "nnunetv2 is not installed: pip install 'losslab[nnunet]' (see the README)",
        allow_module_level=True,
    )

HERE = Path(__file__).parent


def test_targets_are_downsampled_as_nnunets_transform_does():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (1, 12, 10, 9), generator=generator, dtype=torch.int16)
    scales = [1, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]]
    theirs = DownsampleSegForDSTransform(scales)(segmentation=labels)["segmentation"]
    for scale in theirs:
        ours = downsample_target(labels[None], scale.shape[1:])[0]
        assert ours.dtype == scale.dtype and torch.equal(ours, scale)


def test_deep_supervision_matches_nnunets_wrapper():
    loss = ExportedLoss(Candidate.from_loss("dice_ce"), 4)
    generator = torch.Generator().manual_seed(1)
    outputs = [torch.randn(2, 4, *(s,) * 3, generator=generator) for s in (8, 4, 2)]
    targets = [torch.randint(0, 4, (2, 1, *(s,) * 3), generator=generator) for s in (8, 4, 2)]
    wrapped = DeepSupervisionWrapper(loss, deep_supervision_weights(3))
    torch.testing.assert_close(loss(outputs, targets), wrapped(outputs, targets))


def _nnunet_env(root: Path) -> dict[str, str]:
    folders = {
        name: root / name for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
    }
    for folder in folders.values():
        folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "nnUNet_n_proc_DA"}
    return {**env, **{k: str(v) for k, v in folders.items()}, "nnUNet_compile": "false"}


@pytest.mark.slow
def test_the_exported_trainer_trains_in_nnunet_and_its_schedule_follows_the_pseudo_dice(
    tmp_path,
):
    env = _nnunet_env(tmp_path)
    folder = write_phantom_nnunet(
        env["nnUNet_raw"], cases=3, shape=(24, 24, 24), seed=0, dataset_id=990
    )
    command = Path(sys.executable).parent / "nnUNetv2_plan_and_preprocess"
    planned = subprocess.run(
        [str(command), "-d", "990", "-c", "3d_fullres", "-np", "1", "-npfp", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert planned.returncode == 0, planned.stderr[-2000:]
    candidate = Candidate.from_loss("dice_ce", class_schedule=ScheduleSpec.of("tcf"))
    candidate_file = tmp_path / "best_candidate.json"
    candidate_file.write_text(candidate.to_json())
    out = tmp_path / "export"
    assert main(["export", str(candidate_file), "--to", "nnunet", "--out", str(out)]) == 0
    name = f"nnUNetTrainer_losslab_{candidate.key[:8]}"
    trainers = Path(nnunetv2.__path__[0]) / "training" / "nnUNetTrainer"
    installed = trainers / f"{name}.py"
    assert not installed.exists(), f"{installed} is left from another run"
    foreground = len(json.loads((folder / "dataset.json").read_text())["labels"]) - 1
    low, crossed = [0.5] * foreground, [0.95] + [0.5] * (foreground - 1)  # liver crosses 0.9
    settings = tmp_path / "settings.json"
    settings.write_text(
        json.dumps(
            {"dataset": "990", "trainer": name, "iterations": 2, "pseudo_dice": [low, crossed]}
        )
    )
    shutil.copyfile(out / f"{name}.py", installed)  # the install step of the instructions
    try:
        trained = subprocess.run(
            [sys.executable, str(HERE / "nnunet_run.py"), str(settings)],
            env={**env, "nnUNet_n_proc_DA": "0"},  # no augmentation workers (planning needs 1+)
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        installed.unlink()
        for cached in (trainers / "__pycache__").glob(f"{name}.*"):
            cached.unlink()
    assert trained.returncode == 0, trained.stderr[-3000:]
    report = json.loads(trained.stdout.strip().splitlines()[-1])
    assert report["class"] == f"nnunetv2.training.nnUNetTrainer.{name}.{name}"
    assert report["wrapped"] == "DeepSupervisionWrapper"
    first, second = report["epochs"]
    assert first == {"weights": [1.0] * (foreground + 1), "step": 1}  # 2 iterations: steps 0 and 1
    assert second["step"] == 3
    assert second["weights"][1] == pytest.approx(0.1)
    assert second["weights"][:1] + second["weights"][2:] == [1.0] * foreground
    assert len(report["train_losses"]) == 2
    assert all(math.isfinite(v) for v in report["train_losses"])


class _Base:
    """The parts of ``nnUNetTrainer`` the mixin calls, recorded."""

    num_epochs, num_iterations_per_epoch, current_epoch = 3, 2, 0
    enable_deep_supervision, is_ddp = True, False

    def __init__(self, labels, dice):
        self.label_manager, self.dice, self.log = labels, dice, []
        self.logger = SimpleNamespace(get_value=lambda key, step: self.dice[self.current_epoch])

    def _get_deep_supervision_scales(self):
        return [[1, 1, 1], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]]

    def _do_i_compile(self):
        return False

    def on_train_epoch_start(self):
        pass

    def train_step(self, batch):
        return {"step": self.losslab_loss.step, "total": self.losslab_loss.total_steps}

    def on_epoch_end(self):
        self.current_epoch += 1

    def print_to_log_file(self, *args):
        self.log.append(" ".join(map(str, args)))


def _trainer(labels, dice=()):
    from losslab.export.nnunet_trainer import LosslabTrainerMixin

    class Trainer(LosslabTrainerMixin, _Base):
        losslab_candidate = Candidate.from_loss(
            "dice", class_schedule=ScheduleSpec("tcf")
        ).to_json()

    return Trainer(labels, list(dice))


def test_the_trainer_wraps_steps_and_feeds_the_pseudo_dice_as_nnunet_calls_it():
    labels = SimpleNamespace(has_regions=False, has_ignore_label=False, num_segmentation_heads=3)
    trainer = _trainer(labels, [[0.5, 0.95], [0.95, 0.5]])
    loss = trainer._build_loss()
    assert isinstance(loss, DeepSupervisionWrapper)
    assert loss.weight_factors == pytest.approx((2 / 3, 1 / 3, 0.0))
    steps = []
    for _ in range(2):
        trainer.on_train_epoch_start()
        steps += [trainer.train_step({}) for _ in range(trainer.num_iterations_per_epoch)]
        trainer.on_epoch_end()
    assert steps == [{"step": s, "total": 6} for s in range(4)]
    assert trainer.losslab_loss.class_weights.tolist() == pytest.approx([1.0, 0.1, 1.0])
    assert trainer.log[0] == "losslab class weights: [1.0, 1.0, 0.1]"


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (SimpleNamespace(has_regions=True, has_ignore_label=False), "region-based training"),
        (SimpleNamespace(has_regions=False, has_ignore_label=True), "an 'ignore' label"),
    ],
)
def test_regions_and_ignore_labels_are_refused_naming_the_trainer(labels, message):
    with pytest.raises(ValueError, match=f"Trainer: .*{message}"):
        _trainer(labels)._build_loss()
