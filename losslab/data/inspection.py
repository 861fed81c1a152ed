"""Check a whole Decathlon folder and summarise it, collecting every problem at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from losslab.data import decathlon, stats
from losslab.data.errors import DatasetError, DatasetProblem


@dataclass(frozen=True)
class CaseSummary:
    """What ``inspect_decathlon`` learned about one case (None where a file is at fault).

    Attributes:
        case_id: name of the case.
        shape: ``(D, H, W)`` of the image in RAS+ order.
        spacing: voxel size in mm.
        counts: int64 ``[C]`` voxels per class of the label.
    """

    case_id: str
    shape: tuple[int, int, int] | None
    spacing: tuple[float, float, float] | None
    counts: np.ndarray | None


@dataclass
class InspectionReport:
    """Summary of a Decathlon folder and all its problems."""

    root: Path
    manifest: decathlon.DecathlonManifest | None
    cases: list[CaseSummary] = field(default_factory=list)
    problems: list[DatasetProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the folder has no problem."""
        return not self.problems

    def case_class_counts(self) -> torch.Tensor:
        """int64 ``[cases, C]`` over the cases whose label could be read."""
        rows = [c.counts for c in self.cases if c.counts is not None]
        num_classes = len(self.manifest.class_names) if self.manifest else 0
        if not rows:
            return torch.zeros(0, num_classes, dtype=torch.int64)
        return torch.from_numpy(np.stack(rows))

    def class_table(self) -> list[dict]:
        """One row per class: voxels, share of labelled voxels, cases present, freq, weight."""
        if self.manifest is None or not self.manifest.class_names:
            return []
        counts = self.case_class_counts()
        totals = counts.sum(dim=0)
        labelled = max(int(totals[1:].sum()), 1)
        freq = stats.class_frequencies(counts)
        weights = stats.median_frequency_weights(counts)
        return [
            {
                "value": c,
                "name": name,
                "voxels": int(totals[c]),
                "share": (float(totals[c]) / labelled) if c > 0 else float("nan"),
                "cases": int((counts[:, c] > 0).sum()),
                "frequency": float(freq[c]),
                "mfb_weight": float(weights[c]),
            }
            for c, name in enumerate(self.manifest.class_names)
        ]


def inspect_decathlon(data_dir: str | Path) -> InspectionReport:
    """Read every file of a Decathlon folder and collect all its problems.

    The images are read by header only (shape, spacing, readability); the labels are read
    fully (shape against the image, integer values, values among ``dataset.json`` labels).
    """
    manifest, problems = decathlon.parse_manifest(data_dir)
    report = InspectionReport(Path(data_dir), manifest, problems=list(problems))
    if manifest is None:
        return report
    num_classes = len(manifest.class_names) or None
    seen: set[Path] = set()
    for case in manifest.cases:
        if case.image in seen:
            report.problems.append(DatasetProblem(case.image, "listed twice in 'training'"))
        seen.add(case.image)
        shape = spacing = counts = None
        try:
            nifti = decathlon.load_nifti(case.image)
            shape = decathlon.spatial_shape(nifti, case.image)
            spacing = decathlon.spacing_of(nifti)
        except DatasetError as exc:
            report.problems.append(DatasetProblem.of(exc))
        try:
            label = decathlon.read_label(case, num_classes, shape)
            if num_classes is not None:
                counts = np.bincount(label.reshape(-1), minlength=num_classes).astype(np.int64)
        except DatasetError as exc:
            report.problems.append(DatasetProblem.of(exc))
        report.cases.append(CaseSummary(case.case_id, shape, spacing, counts))
    return report
