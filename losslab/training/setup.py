"""Setting a run up: its schedules, network, patch sampler, validation patches and state.

``Trainer`` sets up one run; a population (``population.py``, ``members.py``) sets up several
over data, a sampler and validation patches it makes once. Both build each run's
:class:`TrainState` with :func:`run_state`, so a member starts exactly as the run alone would.
"""

from __future__ import annotations

import torch

from losslab.candidate import Candidate
from losslab.data import PatchSampler, SegmentationDataset, stats
from losslab.losses import compile_terms
from losslab.models import get_model
from losslab.schedules import (
    ClassSchedule,
    EpochContext,
    ParamSchedule,
    TermSchedule,
    get_class_schedule,
    get_param_schedule,
    get_term_schedule,
)
from losslab.training.config import TrainConfig
from losslab.training.state import TrainState
from losslab.training.validation import choose_validation_patches

__all__ = [
    "amp_dtype",
    "build_model",
    "fastest_layout",
    "candidate_schedules",
    "make_optimizer",
    "param_schedule_of",
    "run_state",
    "start_context",
    "train_sampler",
    "validation_patches",
]


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The run's optimiser over ``model``'s trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params, lr=config.lr, momentum=0.99, nesterov=True, weight_decay=config.weight_decay
    )


def amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bfloat16 autocast on a CUDA device that has it when ``config.amp``; else none."""
    if not config.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else None


def param_schedule_of(candidate: Candidate) -> ParamSchedule | None:
    """The candidate's parameter schedule, if it has one."""
    spec = candidate.param_schedule
    return None if spec is None else get_param_schedule(spec.name, **dict(spec.params))


def candidate_schedules(
    candidate: Candidate, dataset: SegmentationDataset
) -> tuple[ClassSchedule, TermSchedule]:
    """The candidate's schedules, as built from their names and parameters."""
    class_schedule = get_class_schedule(
        candidate.class_schedule.name,
        num_classes=dataset.num_classes,
        **candidate.class_schedule.to_dict()["params"],
    )
    term_schedule = get_term_schedule(
        candidate.term_schedule.name,
        num_terms=len(candidate.terms),
        **candidate.term_schedule.to_dict()["params"],
    )
    return class_schedule, term_schedule


def start_context(dataset: SegmentationDataset, total_epochs: int) -> EpochContext:
    """The epoch-0 context of a run on ``dataset``: the class frequencies of its training split.

    ``frequencies`` are the voxel shares of the classes in the training cases;
    ``balancing_frequencies`` are Hegde's (voxels of a class over the voxels of the training
    cases where it is present), which the frequency-based class schedules use. Both come from
    ``dataset.case_class_counts``, which the dataset computes once and keeps, so a study that
    trains many candidates on one dataset counts its voxels once.

    Raises:
        ValueError: the training split has no voxels.
    """
    counts = dataset.case_class_counts[dataset.splits.get("train", [])]
    voxels = counts.sum(dim=0).to(torch.float64)
    if float(voxels.sum()) <= 0:
        raise ValueError("the training split has no voxels: no class frequencies to start from")
    return EpochContext.start(
        (voxels / voxels.sum()).tolist(),
        total_epochs,
        balancing_frequencies=stats.class_frequencies(counts).tolist(),
    )


def build_model(config: TrainConfig, dataset: SegmentationDataset, device: torch.device):
    """The network of a run with ``config``, initialised right after ``torch.manual_seed``, in
    its device's fastest layout (:func:`fastest_layout`)."""
    torch.manual_seed(config.seed)
    model = get_model(
        config.model,
        in_channels=dataset.images[0].shape[0],
        num_classes=dataset.num_classes,
        patch_size=config.patch_size,
        size=config.model_size,
        **config.model_overrides,
    ).to(device)
    return fastest_layout(model, device)


def fastest_layout(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` with its 3D convolutions' weights channels-last on the CPU, as they are.

    On the CPU, oneDNN's 3D convolutions run 14-30% faster forward and backward with
    channels-last weights (``torch.channels_last_3d``; then their inputs and outputs follow):
    unet3d, UNETR and Lambda3D, 1 and 2 threads (``docs/benchmarks.md``, Trainer). Same
    weights and the same initialisation; results equal the contiguous layout's to float
    rounding (the convolutions sum in another order). On CUDA the layout is left as it is:
    not measured there.
    """
    if device.type != "cpu":
        return model
    if not any(p.dim() == 5 for p in model.parameters()):
        return model
    return model.to(memory_format=torch.channels_last_3d)


def train_sampler(
    config: TrainConfig, data: SegmentationDataset, device: torch.device, seed: int
) -> PatchSampler:
    """The sampler of training batches over ``data`` (already on ``device``)."""
    return PatchSampler(
        data,
        split="train",
        patch_size=config.patch_size,
        batch_size=config.batch_size,
        mode=config.sampling,
        device=device,
        seed=seed,
    )


def validation_patches(config: TrainConfig, dataset: SegmentationDataset, seed: int) -> list:
    """The fixed validation crops of ``validation: patches`` (none for the sliding window)."""
    if config.validation != "patches":
        return []
    return choose_validation_patches(
        [dataset.labels[i] for i in dataset.splits.get("val", [])],
        dataset.num_classes,
        config.patch_size,
        config.val_patches_per_class,
        seed=seed,
    )


def run_state(
    config: TrainConfig,
    candidate: Candidate,
    data: SegmentationDataset,
    *,
    device: torch.device,
    sampler: PatchSampler,
    augment_generator: torch.Generator,
    val_patches: list,
    amp_dtype: torch.dtype | None,
    trainer=None,
) -> TrainState:
    """One run's state: the candidate's schedules, its network (from ``config.seed``) and
    compiled loss, over the given data, sampler and validation patches.

    With a ``trainer`` the run has its own optimiser; without one (a population member) the
    population sets ``optimizer`` and ``trainable`` once the members' networks are stacked.
    """
    class_schedule, term_schedule = candidate_schedules(candidate, data)
    context = start_context(data, config.epochs)
    class_schedule.begin(context)
    model = build_model(config, data, device)
    return TrainState(
        sampler=sampler,
        augment_generator=augment_generator,
        val_patches=val_patches,
        param_schedule=param_schedule_of(candidate),
        trainable=[p for p in model.parameters() if p.requires_grad],
        trainer=trainer,
        alphas=torch.tensor(candidate.term_weights, dtype=torch.float32, device=device),
        loss_values=candidate.loss_parameters(),
        config=config,
        candidate=candidate,
        dataset=data,
        device=device,
        model=model,
        optimizer=make_optimizer(config, model) if trainer is not None else None,  # type: ignore[arg-type]
        loss=compile_terms(candidate.terms),
        class_schedule=class_schedule,
        term_schedule=term_schedule,
        class_weights=class_schedule.weights.to(device),
        term_weights=torch.tensor(candidate.term_weights, device=device),
        amp_dtype=amp_dtype,
        context=context,
    )
