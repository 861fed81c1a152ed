"""Train an exported nnU-Net trainer for a few iterations on the CPU, in a process of its own
(nnU-Net reads its folders from the environment when it is imported).

``python nnunet_run.py SETTINGS.json``; the settings name the dataset, the trainer class and
the scripted pseudo Dice of each epoch, which replaces the measured one after each validation.
Prints one JSON line: the class found, the class weights and the loss's step after each epoch,
and the training losses.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from nnunetv2.run.run_training import get_trainer_from_args


def main(path: str) -> None:
    settings = json.loads(Path(path).read_text())
    trainer = get_trainer_from_args(
        settings["dataset"], "3d_fullres", "all", settings["trainer"], device=torch.device("cpu")
    )
    trainer.num_epochs = len(settings["pseudo_dice"])
    trainer.num_iterations_per_epoch = settings["iterations"]
    trainer.num_val_iterations_per_epoch = 1
    validated, ended, seen = trainer.on_validation_epoch_end, trainer.on_epoch_end, []

    def scripted_validation(outputs):
        validated(outputs)
        epoch = trainer.current_epoch
        trainer.logger.log("dice_per_class_or_region", settings["pseudo_dice"][epoch], epoch)

    def recorded_epoch_end():
        ended()
        loss = trainer.losslab_loss
        seen.append({"weights": loss.class_weights.tolist(), "step": loss.step})

    trainer.on_validation_epoch_end = scripted_validation
    trainer.on_epoch_end = recorded_epoch_end
    trainer.run_training()
    cls = type(trainer)
    print(
        json.dumps(
            {
                "class": f"{cls.__module__}.{cls.__name__}",
                "wrapped": type(trainer.loss).__name__,
                "epochs": seen,
                "train_losses": [float(v) for v in trainer.logger.get_value("train_losses", None)],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
