"""Networks: the MLP's in-place ReLU gives the same values and gradients as a plain one."""

import copy

import torch
from torch import nn

from pvae.networks import MLP


def test_in_place_relu_matches_a_plain_mlp():
    torch.manual_seed(0)
    net = MLP(5, 3, (7, 6))
    assert all(layer.inplace for layer in net if isinstance(layer, nn.ReLU))
    plain = copy.deepcopy(net)
    for index, layer in enumerate(plain):
        if isinstance(layer, nn.ReLU):
            plain[index] = nn.ReLU()
    x = torch.randn(11, 5)
    out, expected = net(x), plain(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    out.pow(2).sum().backward()
    expected.pow(2).sum().backward()
    for a, b in zip(net.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)
    assert not any(isinstance(layer, nn.ReLU) for layer in MLP(5, 3, (7,), activation=nn.Tanh))
