"""Random patch sampling for training, entirely with tensor ops on the dataset's device.

The cases of a split are padded and stacked once into one ``[N, K, D, H, W]`` tensor (``K``
input channels) on the device; a batch is drawn with a ``torch.Generator`` on that device and, on a GPU, gathered with
one ``torch.take`` per tensor, so sampling makes no host round trip there.

``"balanced"`` mode follows MONAI's ``RandCropByLabelClassesd`` with equal ratios: the class of
each patch is drawn uniformly among the classes present in its case (background included),
the centre uniformly among that class's voxels (voxel lists are precomputed once), and the crop
is shifted inside the volume when the centre is near a border. ``"uniform"`` mode draws the crop
origin uniformly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from losslab.data.dataset import SegmentationDataset

MODES = ("balanced", "uniform")


class PatchSampler:
    """Draw training patches from one split of a dataset.

    Args:
        dataset: the dataset (its tensors are copied to ``device`` once).
        split: which split to draw from.
        patch_size: ``(Pd, Ph, Pw)``; cases smaller than the patch are padded (image with its
            minimum over all channels, label with 0), centred.
        batch_size: B, patches per call.
        mode: ``"balanced"`` or ``"uniform"``.
        device: where patches live (default: the dataset's device).
        seed: seed of the sampler's ``torch.Generator``.

    Example:
        >>> from losslab.data import load_dataset
        >>> ds = load_dataset("phantom", cases=3, shape=(32, 32, 32))
        >>> images, labels = PatchSampler(ds, patch_size=(16, 16, 16)).sample()
        >>> tuple(images.shape), tuple(labels.shape)
        ((2, 1, 16, 16, 16), (2, 16, 16, 16))
    """

    def __init__(
        self,
        dataset: SegmentationDataset,
        split: str = "train",
        patch_size: Sequence[int] = (32, 32, 32),
        batch_size: int = 2,
        mode: str = "balanced",
        device: str | torch.device | None = None,
        seed: int = 0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.patch_size = tuple(int(p) for p in patch_size)
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise ValueError(f"patch_size must be three positive sizes, got {patch_size}")
        indices = dataset.splits.get(split, [])
        if not indices:
            raise ValueError(f"split {split!r} of dataset {dataset.name!r} has no cases")
        self.split, self.mode, self.batch_size = split, mode, batch_size
        self.num_classes = dataset.num_classes
        self.device = torch.device(device) if device is not None else dataset.device
        self.case_indices = list(indices)
        self._generator = torch.Generator(device=self.device).manual_seed(seed)
        padded = self._stack(
            [dataset.images[i] for i in indices], [dataset.labels[i] for i in indices]
        )
        if mode == "balanced":
            self._index_classes(padded)
        self._offsets = [torch.arange(p, device=self.device) for p in self.patch_size]
        # made once: a host-to-device copy per batch would synchronise with the GPU
        self._patch = torch.tensor(self.patch_size, device=self.device)

    def get_rng_state(self) -> torch.Tensor:
        """The state of the sampler's random stream (to replay the same patches)."""
        return self._generator.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        """Put back a state from :meth:`get_rng_state`."""
        self._generator.set_state(state)

    def _stack(self, images: list[torch.Tensor], labels: list[torch.Tensor]) -> list[torch.Tensor]:
        """Pad cases to at least the patch and stack them into ``[N, *common]`` tensors.

        Returns:
            The padded labels ``[D_i, H_i, W_i]``, one per case.
        """
        shapes = [tuple(max(n, p) for n, p in zip(lab.shape, self.patch_size)) for lab in labels]
        common = tuple(max(s[a] for s in shapes) for a in range(3))
        label_dtype = torch.uint8 if self.num_classes <= 256 else torch.int64
        channels = images[0].shape[0]
        self._images = torch.zeros(
            (len(images), channels, *common), dtype=torch.float32, device=self.device
        )
        self._labels = torch.zeros((len(labels), *common), dtype=label_dtype, device=self.device)
        padded: list[torch.Tensor] = []
        for i, (image, label, shape) in enumerate(zip(images, labels, shapes)):
            image = image.to(self.device, torch.float32)
            label = label.to(self.device, label_dtype)
            pad = []
            for n, s in zip(reversed(label.shape), reversed(shape)):
                pad += [(s - n) // 2, s - n - (s - n) // 2]
            if any(pad):
                image = F.pad(image[None], pad, value=float(image.min()))[0]
                label = F.pad(label[None, None], pad, value=0)[0, 0]
            region = tuple(slice(0, s) for s in shape)
            self._images[(i, slice(None), *region)] = image
            self._labels[(i, *region)] = label
            padded.append(label)
        self._extent = torch.tensor(shapes, dtype=torch.int64, device=self.device)
        self._common = common
        return padded

    def _index_classes(self, labels: list[torch.Tensor]) -> None:
        """Voxel indices of every case sorted by class, with per-(case, class) start and count."""
        voxels, starts, counts, offset = [], [], [], 0
        for label in labels:
            flat = label.reshape(-1)
            order = torch.argsort(flat, stable=True)
            count = torch.bincount(flat.long(), minlength=self.num_classes)[: self.num_classes]
            start = offset + torch.cumsum(count, 0) - count
            voxels.append(order.to(torch.int32 if flat.numel() < 2**31 else torch.int64))
            starts.append(start)
            counts.append(count)
            offset += flat.numel()
        self._voxels = torch.cat(voxels)
        self._class_start = torch.stack(starts)
        self._class_count = torch.stack(counts)
        self._present = self._class_count > 0

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw one batch.

        Returns:
            ``(images float32 [B, K, *patch], labels int64 [B, *patch])`` on ``self.device``.
        """
        g, dev, b = self._generator, self.device, self.batch_size
        patch = self._patch
        case = torch.randint(len(self.case_indices), (b,), generator=g, device=dev)
        extent = self._extent[case]
        if self.mode == "balanced":
            keys = torch.rand(b, self.num_classes, generator=g, device=dev)
            cls = keys.masked_fill(~self._present[case], -1.0).argmax(dim=1)
            count = self._class_count[case, cls]
            u = torch.rand(b, generator=g, device=dev, dtype=torch.float64)
            pick = torch.minimum((u * count).long(), count - 1)
            flat = self._voxels[self._class_start[case, cls] + pick].long()
            h, w = extent[:, 1], extent[:, 2]
            centre = torch.stack([flat // (h * w), (flat // w) % h, flat % w], dim=1)
            origin = torch.minimum((centre - patch // 2).clamp_min(0), extent - patch)
        else:
            u = torch.rand(b, 3, generator=g, device=dev, dtype=torch.float64)
            origin = (u * (extent - patch + 1)).long()
        return self._gather(case, origin)

    def _gather(
        self, case: torch.Tensor, origin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops ``[B, *patch]`` at ``origin [B, 3]`` of cases ``case [B]``.

        On an accelerator one ``torch.take`` per tensor (no host round trip); on the CPU,
        where there is no round trip to save, slicing views and stacking them copies less.
        """
        if self.device.type == "cpu":
            return self._gather_slices(case, origin)
        return self._gather_take(case, origin)

    def _gather_slices(
        self, case: torch.Tensor, origin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pd, ph, pw = self.patch_size
        boxes = [
            (c, slice(x, x + pd), slice(y, y + ph), slice(z, z + pw))
            for c, (x, y, z) in zip(case.tolist(), origin.tolist())
        ]
        images = torch.stack([self._images[(box[0], slice(None), *box[1:])] for box in boxes])
        return images, torch.stack([self._labels[box] for box in boxes]).long()

    def _gather_take(
        self, case: torch.Tensor, origin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        d, h, w = self._common
        ox, oy, oz = self._offsets
        x = (case * d + origin[:, 0])[:, None] + ox
        y = origin[:, 1, None] + oy
        z = origin[:, 2, None] + oz
        index = (x[:, :, None, None] * h + y[:, None, :, None]) * w + z[:, None, None, :]
        labels = torch.take(self._labels, index).long()
        if self._images.shape[1] == 1:
            return torch.take(self._images, index)[:, None], labels
        # channel k of case n starts at (n * K + k) * d * h * w of the flat images
        channels, volume = self._images.shape[1], d * h * w
        per_case = (case * (channels - 1) * volume).view(-1, 1, 1, 1, 1)
        per_channel = (torch.arange(channels, device=self.device) * volume).view(1, -1, 1, 1, 1)
        return torch.take(self._images, index[:, None] + per_case + per_channel), labels

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless stream of batches."""
        while True:
            yield self.sample()
