"""``StackedNetwork``: N networks of one architecture trained as one batched network.

The members' parameters and buffers are stacked along a new leading dimension
(``torch.func.stack_module_state``) and the forward pass is ``vmap`` of ``functional_call`` over
that dimension: one call runs every member, and PyTorch's batching rules turn each convolution
into one grouped convolution (one with ``N x`` the output channels when the input is shared),
so N small networks fill a device that one of them leaves idle.

- **Input.** ``images [B, Cin, *patch]`` is shared by every member (``in_dims=None``: members
  that share a seed draw the same patches); ``[N, B, Cin, *patch]`` gives each member its own.
- **Normalisation.** Instance norm has no state. Batch norm's running statistics are stacked
  buffers that the batched forward updates in place, each member's slice as it would alone.
- **Randomness.** ``vmap`` runs with ``randomness="error"``: a network that draws random numbers
  in its forward pass (dropout > 0) cannot be batched with the results it gives alone, so
  :meth:`StackedNetwork.check` raises and the caller trains its members one at a time.
- **Members.** :attr:`StackedNetwork.members` are plain modules of the architecture whose
  parameters and buffers *alias* their slice of the stacked tensors: they always hold the
  member's current weights, without a copy, for validation and for hooks.
- **Optimiser.** One optimiser over the stacked parameters: Adam, AdamW and SGD (momentum,
  Nesterov, weight decay) update every element from its own gradient and state alone, so one
  optimiser over the stack is N optimisers. Its step count is shared, which holds because every
  member takes every step. Gradient clipping is per member (:meth:`clip_grad_norms`).
- **Dropping members.** :meth:`select` keeps some members (a failed or pruned one leaves the
  population): parameters, buffers and the optimiser's state are cut to their slices.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

__all__ = ["StackedNetwork"]

OptimizerFactory = Callable[[nn.Module], torch.optim.Optimizer]


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """The submodule that holds the tensor ``name`` (``"a.b.weight"``) and its local name."""
    path, _, leaf = name.rpartition(".")
    return (model.get_submodule(path) if path else model), leaf


class StackedNetwork:
    """N modules of one architecture as one batched module (see the module docstring).

    Args:
        models: the members, each initialised as it would be alone; their tensors are replaced
            by aliases of the stack (the modules stay usable, see :attr:`members`).
        make_optimizer: builds the optimiser from a module whose ``parameters()`` are the stacked
            trainable tensors (the trainer's own optimiser factory).
    """

    def __init__(self, models: Sequence[nn.Module], make_optimizer: OptimizerFactory):
        if not models:
            raise ValueError("a stacked network needs at least one member")
        self.members = list(models)
        self._make_optimizer = make_optimizer
        self.skeleton = copy.deepcopy(self.members[0]).to("meta").train()
        params, buffers = stack_module_state(self.members)
        frozen = {n for n, p in self.members[0].named_parameters() if not p.requires_grad}
        self.trainable = {n: nn.Parameter(p.detach()) for n, p in params.items() if n not in frozen}
        self.frozen = {n: p.detach() for n, p in params.items() if n in frozen}
        self.buffers = dict(buffers)
        self.optimizer = make_optimizer(nn.ParameterList(self.trainable.values()))
        self._bind()

    @property
    def size(self) -> int:
        return len(self.members)

    def parameters(self) -> list[nn.Parameter]:
        """The stacked trainable tensors ``[N, ...]``."""
        return list(self.trainable.values())

    def _bind(self) -> None:
        """Point every member's parameters and buffers at its slice of the stack."""
        tensors = {**self.trainable, **self.frozen}
        for j, model in enumerate(self.members):
            for name, stacked in tensors.items():
                module, leaf = _owner(model, name)
                module._parameters[leaf] = nn.Parameter(
                    stacked.detach()[j], requires_grad=name in self.trainable
                )
            for name, stacked in self.buffers.items():
                module, leaf = _owner(model, name)
                module._buffers[leaf] = stacked[j]

    def _call(self, trainable, frozen, buffers, images):
        return functional_call(self.skeleton, {**trainable, **frozen, **buffers}, (images,))

    def _forward(self, buffers: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        if images.dim() not in (5, 6):
            raise ValueError(
                f"expected images [B, C, D, H, W] or [N, B, C, D, H, W], got {images.shape}"
            )
        in_dims = (0, 0, 0, None if images.dim() == 5 else 0)
        batched = vmap(self._call, in_dims=in_dims, randomness="error")
        return batched(self.trainable, self.frozen, buffers, images)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, B, C, *patch]`` of every member (training mode: batch norm updates its
        running statistics, as a member's ``model.train()`` forward would)."""
        return self._forward(self.buffers, images)

    def check(self, images: torch.Tensor) -> None:
        """One forward and backward pass at the shape of ``images`` that changes nothing (the
        buffers are copied, the gradients returned, not stored): raises what batching raises,
        an unsupported operation, a random one, or running out of memory at this population
        size, before anything was trained."""
        buffers = {name: b.clone() for name, b in self.buffers.items()}
        with torch.enable_grad():
            logits = self._forward(buffers, images)
            torch.autograd.grad(logits.float().sum(), self.parameters(), allow_unused=True)

    def clip_grad_norms(self, max_norm: float) -> torch.Tensor:
        """Clip each member's gradient as ``clip_grad_norm_`` would clip it alone; ``[N]`` norms.

        A member's norm is the 2-norm of its slices of all gradients, and its gradients are
        scaled by ``min(1, max_norm / (norm + 1e-6))``, as in ``torch.nn.utils.clip_grad_norm_``.
        No host sync.
        """
        grads = [p.grad for p in self.trainable.values() if p.grad is not None]
        if not grads:
            return torch.zeros(self.size, device=self.device)
        norms = torch.stack(
            [torch.linalg.vector_norm(g.reshape(len(g), -1), 2, dim=1) for g in grads]
        )
        total = torch.linalg.vector_norm(norms, 2, dim=0)
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for grad in grads:
            grad.mul_(coef.to(grad.dtype).view(-1, *[1] * (grad.dim() - 1)))
        return total

    def step(self, skip: Sequence[int] = ()) -> None:
        """One optimiser step; the members at positions ``skip`` keep their weights (one whose
        loss raised takes no step, as alone; its optimiser state does not matter any more)."""
        if not skip:  # the usual case: no index tensor (a host-to-device copy) to make
            self.optimizer.step()
            return
        rows = torch.tensor(list(skip), dtype=torch.long, device=self.device)
        kept = [p.detach()[rows].clone() for p in self.parameters()]
        self.optimizer.step()
        with torch.no_grad():
            for p, value in zip(self.parameters(), kept):
                p[rows] = value

    @property
    def device(self) -> torch.device:
        tensors = [*self.trainable.values(), *self.frozen.values(), *self.buffers.values()]
        return tensors[0].device if tensors else torch.device("cpu")

    def select(self, keep: Sequence[int]) -> None:
        """Keep only the members at positions ``keep`` (in that order): parameters, buffers,
        optimiser state and :attr:`members`; a new optimiser replaces the old one."""
        keep = list(keep)
        if not keep:
            raise ValueError("a stacked network keeps at least one member")
        if keep == list(range(self.size)):
            return
        index = torch.tensor(keep, device=self.device)
        old = self.parameters()
        saved = self.optimizer.state_dict()
        for number, entry in saved["state"].items():
            shape = old[number].shape
            for name, value in entry.items():
                if torch.is_tensor(value) and value.shape == shape:
                    entry[name] = value.index_select(0, index.to(value.device))
        self.trainable = {
            n: nn.Parameter(p.detach().index_select(0, index)) for n, p in self.trainable.items()
        }
        self.frozen = {n: p.index_select(0, index) for n, p in self.frozen.items()}
        self.buffers = {n: b.index_select(0, index) for n, b in self.buffers.items()}
        self.optimizer = self._make_optimizer(nn.ParameterList(self.trainable.values()))
        self.optimizer.load_state_dict(saved)
        self.members = [self.members[j] for j in keep]
        self._bind()
