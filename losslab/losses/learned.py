"""A learned loss: a small network applied per voxel and per class (ML3, Bechtle et al. 2021).

For every voxel ``n`` and class ``c`` the network reads a feature vector
``f_nc = (p_nc, y_nc, logp_nc[, w_c][, t])`` (softmax probability, one-hot target, log-softmax
clamped to ``[-20, 0]``, optionally the class weight and the training progress ``t in [0, 1]``)
and an MLP ``g`` with smooth activations gives a non-negative value; the learned part of the loss
is its voxel mean, a per-class vector like every loss term of the project::

    L_c^learned = mean_{b, n} softplus(g(f_bnc))                  # [C]
    L_c         = L_c^base + L_c^learned                          # base: the library's dice or ce

so class weights apply to it unchanged (``mean_c(w_c * L_c)``, see ``losslab.losses.spec.reduce``).
The same weights serve every class and voxel: the network's size depends neither on the number
of classes nor on the patch size.

Choices:

- **Near-zero start.** The last layer's bias starts at ``init_bias = -5`` and its weights at
  ``N(0, init_std = 0.01)``, so each voxel's value is about ``softplus(-5) = 6.7e-3`` and its
  gradient with respect to the predictions about ``sigmoid(-5) * 0.01`` per hidden unit: meta-
  training starts from the base loss alone, yet every parameter of the network has a non-zero
  meta-gradient (the last layer's directly, the others through its small weights). Softplus,
  not a ReLU, keeps the output non-negative with a gradient everywhere.
- **Smooth activations only** (:data:`ACTIVATIONS`): meta-gradients are second derivatives,
  which a ReLU network has none of.
- **Precision.** Features and the MLP are computed in the dtype of the network's parameters
  (float32 unless converted with ``.double()``) with autocast disabled, as ``CompiledLoss``
  computes in float32; a float64 network on float64 logits is float64 throughout (finite-
  difference tests). The base loss runs the library's compiled program on the same terminals;
  only float64 logits keep their dtype (the library casts ``z`` to float32).

Storage: :func:`state_bytes` is a canonical byte layout (magic line, 8-byte little-endian header
length, a sorted compact JSON header holding the architecture and a table of tensors, then the
raw little-endian tensors in ``state_dict`` order), independent of pickle and torch versions.
:func:`content_hash` is the full sha256 hex digest (64 characters) of those bytes; a candidate
names a network by it and :func:`load_network` refuses a file whose bytes do not match it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from losslab.losses.compiler import Terminals
from losslab.losses.library import get_loss
from losslab.losses.spec import CompiledLoss

__all__ = [
    "ACTIVATIONS",
    "BASES",
    "FEATURES",
    "SUFFIX",
    "LossNetwork",
    "content_hash",
    "evaluate_library_loss",
    "load_network",
    "network_from_bytes",
    "save_network",
    "state_bytes",
]

FEATURES = ("p", "y", "logp", "w", "progress")
REQUIRED_FEATURES = ("p", "y", "logp")
ACTIVATIONS = {"tanh": torch.tanh, "softplus": F.softplus, "sigmoid": torch.sigmoid, "silu": F.silu}
BASES = ("dice", "ce", "none")
SUFFIX = ".lossnet"
LOGP_FLOOR = -20.0
_MAGIC = b"LOSSLAB-LOSSNET\n"
_FORMAT_VERSION = 1
_DTYPES = {torch.float32: "<f4", torch.float64: "<f8"}
_HASH = re.compile(r"^[0-9a-f]{64}$")


class LossNetwork(nn.Module):
    """The learned per-voxel, per-class loss (see the module docstring).

    Args:
        features: which of :data:`FEATURES` the network reads, in this order; must contain
            ``p``, ``y`` and ``logp``.
        hidden: widths of the hidden layers (``(32, 32)``: 2 x 32).
        activation: one of :data:`ACTIVATIONS`.
        base: the fixed base loss added by :meth:`loss`: ``"dice"``, ``"ce"`` (the library's) or
            ``"none"``. Part of the architecture: the network was meta-trained on top of it.
        init_std, init_bias: the near-zero start of the last layer (not stored: the saved
            weights replace them).

    Raises:
        ValueError: a bad argument, naming it (``lossnet.features: ...``).
    """

    def __init__(
        self,
        features: Sequence[str] = REQUIRED_FEATURES,
        hidden: Sequence[int] = (32, 32),
        activation: str = "tanh",
        base: str = "dice",
        *,
        init_std: float = 0.01,
        init_bias: float = -5.0,
    ) -> None:
        super().__init__()
        features = tuple(features)
        unknown = [f for f in features if f not in FEATURES]
        if unknown or len(set(features)) != len(features):
            raise ValueError(
                f"lossnet.features: unknown or repeated feature(s) in {list(features)}; "
                f"known: {', '.join(FEATURES)}"
            )
        missing = [f for f in REQUIRED_FEATURES if f not in features]
        if missing:
            raise ValueError(f"lossnet.features: must contain {', '.join(missing)}")
        hidden = tuple(hidden)
        if not hidden or any(
            isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden
        ):
            raise ValueError(f"lossnet.hidden: positive integers, at least one, got {list(hidden)}")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"lossnet.activation: {activation!r} is not one of {', '.join(ACTIVATIONS)} "
                "(smooth activations only: meta-gradients are second derivatives)"
            )
        if base not in BASES:
            raise ValueError(f"lossnet.base: {base!r} is not one of {', '.join(BASES)}")
        self.features, self.hidden, self.activation, self.base = features, hidden, activation, base
        widths = (len(features), *hidden, 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        with torch.no_grad():
            self.layers[-1].weight.normal_(0.0, init_std)
            self.layers[-1].bias.fill_(init_bias)

    def architecture(self) -> dict:
        """Everything :func:`network_from_bytes` needs to rebuild the module (JSON data)."""
        return {
            "features": list(self.features),
            "hidden": list(self.hidden),
            "activation": self.activation,
            "base": self.base,
        }

    @property
    def dtype(self) -> torch.dtype:
        return self.layers[0].weight.dtype

    def voxel_values(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        class_weights: torch.Tensor | None = None,
        progress: float | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The non-negative per-voxel, per-class values ``[B, C, *spatial]``."""
        _check_shapes(logits, labels)
        dtype = self.dtype
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logp = torch.log_softmax(logits.to(dtype), 1)
            columns = {
                "p": logp.exp(),
                "logp": logp.clamp(LOGP_FLOOR, 0.0),
                "y": _onehot(labels, logits.shape, dtype),
            }
            ones = torch.ones((), dtype=dtype, device=logits.device).expand(logits.shape)
            if "w" in self.features:
                shape = [1, logits.shape[1]] + [1] * (logits.dim() - 2)
                w = class_weights if class_weights is not None else torch.ones(logits.shape[1])
                columns["w"] = ones * w.to(logits.device, dtype).reshape(shape)
            if "progress" in self.features:
                t = 0.0 if progress is None else progress
                if isinstance(t, torch.Tensor):
                    t = t.to(logits.device, dtype)
                columns["progress"] = ones * t  # a number as a scalar: no host-to-device copy
            h = torch.stack([columns[name] for name in self.features], dim=-1)
            act = ACTIVATIONS[self.activation]
            for layer in self.layers[:-1]:
                h = act(layer(h))
            return F.softplus(self.layers[-1](h)).squeeze(-1)

    def forward(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        class_weights: torch.Tensor | None = None,
        progress: float | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The learned part ``[C]``: the voxel (and batch) mean of :meth:`voxel_values`."""
        values = self.voxel_values(logits, labels, class_weights, progress)
        return values.transpose(0, 1).reshape(values.shape[1], -1).mean(1)

    def loss(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        class_weights: torch.Tensor | None = None,
        progress: float | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Base plus learned part, ``[C]`` (reduce it with ``losslab.losses.spec.reduce``)."""
        learned = self(logits, labels, class_weights, progress)
        if self.base == "none":
            return learned
        base = evaluate_library_loss(_base_loss(self.base), logits, labels, class_weights)
        return base.to(learned.dtype) + learned


@functools.cache
def _base_loss(name: str) -> CompiledLoss:
    """The library's compiled loss ``name`` (kept off the module, so that it pickles)."""
    return get_loss(name).compile()


def evaluate_library_loss(
    compiled: CompiledLoss,
    logits: torch.Tensor,
    labels: torch.Tensor,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """``compiled(logits, labels, class_weights)`` for a single term, except that float64 logits
    stay float64 (the library casts ``z`` to float32, which would spoil float64 tests); any other
    dtype takes exactly the library's path."""
    terminals = Terminals(logits=logits, labels=labels, weights=class_weights)
    if logits.dtype == torch.float64:
        terminals._cache["z"] = logits
    (value,) = compiled.evaluate(terminals)
    return value


def _check_shapes(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.dim() < 3 or tuple(labels.shape) != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"expected logits [B, C, *spatial] and labels [B, *spatial], got "
            f"{tuple(logits.shape)} and {tuple(labels.shape)}"
        )


def _onehot(labels: torch.Tensor, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    out = torch.zeros(shape, dtype=dtype, device=labels.device)
    return out.scatter_(1, labels.unsqueeze(1).long(), 1.0)


def state_bytes(net: LossNetwork) -> bytes:
    """The canonical serialisation of ``net`` (see the module docstring)."""
    tensors, blobs, offset = [], [], 0
    for name, value in net.state_dict().items():
        if value.dtype not in _DTYPES:
            raise ValueError(f"lossnet.{name}: dtype {value.dtype} cannot be stored")
        blob = value.detach().cpu().contiguous().numpy().astype(_DTYPES[value.dtype]).tobytes()
        tensors.append(
            {
                "name": name,
                "dtype": _DTYPES[value.dtype],
                "shape": list(value.shape),
                "offset": offset,
                "nbytes": len(blob),
            }
        )
        blobs.append(blob)
        offset += len(blob)
    header = {
        "format": "losslab.lossnet",
        "version": _FORMAT_VERSION,
        "architecture": net.architecture(),
        "tensors": tensors,
    }
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return _MAGIC + len(text).to_bytes(8, "little") + text + b"".join(blobs)


def content_hash(net: LossNetwork) -> str:
    """The full sha256 hex digest (64 characters) of :func:`state_bytes`."""
    return hashlib.sha256(state_bytes(net)).hexdigest()


def network_from_bytes(data: bytes, source: str = "<bytes>") -> LossNetwork:
    """Rebuild a network from :func:`state_bytes` output.

    Raises:
        ValueError: bytes that are not a loss network, naming ``source``.
    """
    try:
        if not data.startswith(_MAGIC):
            raise ValueError("not a loss-network file (bad magic line)")
        start = len(_MAGIC) + 8
        size = int.from_bytes(data[len(_MAGIC) : start], "little")
        header = json.loads(data[start : start + size].decode("ascii"))
        if header.get("format") != "losslab.lossnet" or header.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"unsupported format {header.get('format')!r} v{header.get('version')}"
            )
        net = LossNetwork(**header["architecture"])
        body, state = data[start + size :], {}
        dtypes = {v: k for k, v in _DTYPES.items()}
        for entry in header["tensors"]:
            raw = body[entry["offset"] : entry["offset"] + entry["nbytes"]]
            array = np.frombuffer(raw, dtype=entry["dtype"]).reshape(entry["shape"])
            state[entry["name"]] = torch.from_numpy(array.copy()).to(dtypes[entry["dtype"]])
        if state and all(v.dtype == torch.float64 for v in state.values()):
            net = net.double()
        net.load_state_dict(state, strict=True)
    except (ValueError, KeyError, TypeError, RuntimeError, UnicodeDecodeError) as err:
        raise ValueError(f"{source}: cannot read the loss network: {err}") from None
    return net


def save_network(net: LossNetwork, folder: str | Path) -> tuple[str, Path]:
    """Write ``net`` to ``folder/<hash>.lossnet``; returns ``(hash, path)``.

    Atomic, through a temporary file of this process's own, so that two processes saving the
    same network at once (two workers of a study) never leave a torn file; a file already
    holding these bytes is left as it is."""
    data = state_bytes(net)
    digest = hashlib.sha256(data).hexdigest()
    path = Path(folder) / f"{digest}{SUFFIX}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
        return digest, path
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return digest, path


def load_network(folder_or_path: str | Path, expected_hash: str) -> LossNetwork:
    """Load the network stored as ``expected_hash``, from a folder or a file path.

    Raises:
        ValueError: ``expected_hash`` is not 64 lower-case hex digits, or the file's sha256
            differs from it (corrupt, edited or renamed), naming the file and both hashes.
        FileNotFoundError: no such file, naming it and the expected hash.
    """
    if not isinstance(expected_hash, str) or not _HASH.match(expected_hash):
        raise ValueError(f"lossnet.hash: 64 lower-case hex digits, got {expected_hash!r}")
    path = Path(folder_or_path)
    if path.is_dir():
        path = path / f"{expected_hash}{SUFFIX}"
    if not path.is_file():
        raise FileNotFoundError(
            f"loss network file {path} not found (expected hash {expected_hash})"
        )
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_hash:
        raise ValueError(
            f"loss network file {path}: content hash {actual} does not match the expected "
            f"hash {expected_hash} (the file is corrupt or is another network)"
        )
    return network_from_bytes(data, str(path))
