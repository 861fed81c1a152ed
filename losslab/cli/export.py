"""``losslab export CANDIDATE_OR_STUDY --to monai|nnunet --out DIR``: the objective a search
found, written for a MONAI training loop or as an nnU-Net v2 trainer, with how to use it."""

from __future__ import annotations

import argparse

from losslab.cli.support import add_study_store_options, use_lossnets

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a found objective as a loss for a MONAI loop or an nnU-Net v2 trainer",
        description=(
            "Write a candidate (its JSON file: an MLflow run's candidate.json, a study's "
            "best_candidate.json) or a study's best candidate as a Python module whose "
            "build_loss() gives a MONAI-style loss (--to monai), or as an nnU-Net v2 trainer "
            "class (--to nnunet), with the candidate file and its learned loss networks. "
            "Exported from a study, the class frequencies of its training data go with it."
        ),
    )
    parser.add_argument(
        "source",
        metavar="CANDIDATE_OR_STUDY",
        help="a candidate JSON file, or a study YAML file or a study's name in --storage",
    )
    parser.add_argument("--to", required=True, choices=["monai", "nnunet"], help="the target")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    add_study_store_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from losslab.config import ConfigError
    from losslab.export.source import resolve_source
    from losslab.export.writers import nnunet_trainer_name, write_monai, write_nnunet

    console, errors = Console(), Console(stderr=True)
    try:
        use_lossnets(args)
        source = resolve_source(args.source, storage=args.storage, tracking_uri=args.tracking_uri)
        write = write_monai if args.to == "monai" else write_nnunet
        written = write(source, args.out)
    except (ConfigError, ValueError, OSError) as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    console.print(
        f"Exported {source.candidate.describe()} from {source.origin}:",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    for path in written:
        console.print(f"  {path}", highlight=False, soft_wrap=True)
    if args.to == "monai":
        classes = "" if source.num_classes is not None else "num_classes=C, "
        console.print(
            f"In your training loop (losslab installed): sys.path.insert(0, {str(args.out)!r}); "
            f"from losslab_loss import build_loss; loss_function = build_loss({classes}"
            "epochs=EPOCHS); call loss_function.set_progress(step, total_steps) before each "
            "step and loss_function.on_epoch_end(per_class_dice) after each validation.",
            highlight=False,
            soft_wrap=True,
        )
    else:
        name = nnunet_trainer_name(source)
        console.print(
            f"Install (losslab installed in nnU-Net's environment): cp {written[0]} \"$(python -c "
            "\"import nnunetv2, os; print(os.path.join(nnunetv2.__path__[0], 'training', "
            f"'nnUNetTrainer'))\")\"\nTrain: nnUNetv2_train DATASET CONFIGURATION FOLD -tr {name}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    return 0
