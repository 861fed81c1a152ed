"""On CUDA, ML3 loss networks meta-trained as one group equal each meta-trained alone (float32,
to float rounding): the GPU check runs it (``scripts/gpu_check.py``, part ``population_cuda``)."""

from __future__ import annotations

import pytest
import torch

from losslab.search.ml3.group import meta_train_group
from losslab.search.ml3.meta import MetaConfig, meta_train

from .test_ml3_group import K, _compare, _Data, _loss_net, _Spy

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


class _OnDevice:
    """``_Data``'s models and batches, on ``device``."""

    def __init__(self, data: _Data, device: str):
        self.data, self.device = data, device

    def model(self, i):
        make = self.data.model(i)
        return lambda step: make(step).to(self.device)

    def train(self, i):
        sample = self.data.train(i)
        return lambda step: [(x.to(self.device), y.to(self.device)) for x, y in sample(step)]

    def val(self, i):
        sample = self.data.val(i)
        return lambda step: tuple(t.to(self.device) for t in sample(step))


@needs_cuda
def test_on_cuda_a_group_equals_each_network_alone(monkeypatch):
    spy = _Spy(monkeypatch)
    config = MetaConfig(inner_steps=K, inner_lr=0.3, outer_lr=0.05)
    data = _OnDevice(_Data(torch.float32), "cuda")
    solos = []
    for i in range(3):
        net = _loss_net(i, torch.float32).cuda()
        meta_train(net, data.model(i), data.train(i), data.val(i), 3, config)
        solos.append(net)
    nets = [_loss_net(i, torch.float32).cuda() for i in range(3)]
    results = meta_train_group(
        nets,
        [data.model(i) for i in range(3)],
        [data.train(i) for i in range(3)],
        [data.val(i) for i in range(3)],
        3,
        config,
    )
    for i, solo in enumerate(solos):
        assert results[i].status == "ok" and results[i].steps == 3
        assert _compare(spy, solo, nets[i]) <= 1e-4, i
