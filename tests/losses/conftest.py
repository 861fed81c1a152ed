from __future__ import annotations

import pytest
import torch


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits [2, 4, 6, 7, 5] and labels in which class 3 is absent."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 6, 7, 5, generator=generator) * 2
    labels = torch.randint(0, 3, (2, 6, 7, 5), generator=generator)
    return logits, labels
