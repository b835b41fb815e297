"""Conv4 / ResNetSmall backbones: shapes, deterministic init, functional_call + vmap with batch-stat BN."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, grad, vmap

from fastadapt.nn.backbones import Conv4, ResNetSmall, conv4_classifier, make_backbone

@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on the shared 2-core machine OpenMP spin-waiting makes 2 threads ~10x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)



def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_conv4_shapes() -> None:
    net = Conv4(generator=gen(0))
    assert net(torch.randn(7, 1, 28, 28, generator=gen(1))).shape == (7, 64)
    assert net(torch.randn(2, 3, 1, 28, 28, generator=gen(1))).shape == (2, 3, 64)
    assert net.out_dim((1, 28, 28)) == 64
    assert Conv4(3, 32, generator=gen(0)).out_shape((3, 84, 84)) == (32 * 5 * 5,)
    rel = Conv4(pool=2, flatten=False, generator=gen(0))
    assert rel(torch.zeros(4, 1, 28, 28)).shape == (4, 64, 7, 7)
    assert ResNetSmall(generator=gen(0)).out_dim((1, 28, 28)) == 128
    assert make_backbone("resnet", hidden=32).out_dim((1, 28, 28)) == 64
    with pytest.raises(ValueError, match="backbone: unknown"):
        make_backbone("vgg")


def test_init_is_deterministic_from_the_generator() -> None:
    a, b, c = Conv4(generator=gen(3)), Conv4(generator=gen(3)), Conv4(generator=gen(4))
    for (n, p), q, r in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(p, q), n
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_batch_bn_has_no_buffers_and_uses_batch_stats_in_eval() -> None:
    net = Conv4(bn="batch", generator=gen(0))
    assert len(list(net.buffers())) == 0
    x = torch.randn(6, 1, 28, 28, generator=gen(2))
    net.eval()
    y_eval = net(x)
    net.train()
    assert torch.allclose(y_eval, net(x))
    run = Conv4(bn="running", generator=gen(0))
    assert len(list(run.buffers())) > 0


def test_functional_call_vmap_matches_per_task_loop() -> None:
    model = conv4_classifier(5, generator=gen(0))
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.randn(3, 10, 1, 28, 28, generator=gen(1))
    y = torch.arange(5).repeat(2).expand(3, 10)

    def loss(p: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(functional_call(model, p, (xb,)), yb)

    # per-task parameters (slightly different per task) through vmap
    per_task = {k: v.expand(3, *v.shape) * torch.tensor([1.0, 0.9, 1.1]).view(3, *[1] * v.dim())
                for k, v in params.items()}
    g_vmap = vmap(grad(loss))(per_task, x, y)
    for t in range(3):
        g_t = grad(loss)({k: v[t] for k, v in per_task.items()}, x[t], y[t])
        for k in params:
            assert torch.allclose(g_vmap[k][t], g_t[k], atol=1e-5, rtol=1e-4), k


def test_pool_before_relu_equals_the_paper_order_and_channels_last_matches() -> None:
    net = Conv4(bn="running", generator=gen(5))
    x = torch.randn(8, 1, 28, 28, generator=gen(6))
    net.eval()
    # the paper's order: conv, BN, ReLU, max-pool
    paper = x
    mods = list(net.body)
    for i in range(0, len(mods), 4):
        conv, bn, pool, relu = mods[i : i + 4]
        paper = pool(relu(bn(conv(paper))))
    assert torch.allclose(net(x), paper.flatten(1), atol=1e-6)
    cl = Conv4(bn="running", generator=gen(5), channels_last=True).eval()
    assert torch.allclose(net(x), cl(x), atol=1e-5)
