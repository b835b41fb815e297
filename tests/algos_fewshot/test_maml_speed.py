"""``maml-speed``: the meta-gradients it times agree, and the loop path keeps the module's memory layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fastadapt.bench.maml_speed import MAMLSpeedConfig, _ce, _Problem, check_meta_gradients, run_maml_speed
from fastadapt.core.types import BenchContext
from fastadapt.ops import functional as F

TINY = dict(way=2, query=2, channels=4, image_size=16, check_tasks=2)


def test_same_layout_restrides_differentiably() -> None:
    ref = torch.empty_strided((6, 1, 3, 3), (9, 1, 3, 1))  # a channels-last module's [C, 1, 3, 3] weight
    t = torch.randn(6, 1, 3, 3, dtype=torch.float64, requires_grad=True)  # strides (9, 9, 3, 1)
    assert t.stride() != ref.stride()
    out = F.same_layout(t, ref)
    assert out.stride() == ref.stride() and out.dtype == torch.float64
    assert torch.equal(out, t.detach())
    (out * torch.arange(54.0, dtype=torch.float64).view(6, 1, 3, 3)).sum().backward()
    assert torch.equal(t.grad, torch.arange(54.0, dtype=torch.float64).view(6, 1, 3, 3))
    same = torch.randn(6, 1, 3, 3)
    assert F.same_layout(same, torch.empty(6, 1, 3, 3)) is same
    expanded = torch.ones(1, 3).expand(4, 3)  # stride 0: no tensor can share its layout
    col = torch.randn(3, 4).t()  # [4, 3], not contiguous
    assert F.same_layout(col, expanded).is_contiguous()


def test_loop_adaptation_keeps_the_channels_last_layout_of_the_module() -> None:
    """The adapted first-layer weight ``[C, 1, 3, 3]`` comes out of the SGD step / stack with NCHW-style
    strides; the loop path must hand the module its own (channels-last) strides back, without changing values."""
    prob = _Problem(MAMLSpeedConfig(**TINY), 2, 0, dtype=torch.float64)
    params = F.params_of(prob.fast)
    name = next(k for k, v in params.items() if v.dim() == 4)
    seen: list[tuple[int, ...]] = []
    conv = dict(prob.fast.named_modules())[name.rsplit(".", 1)[0]]
    hook = conv.register_forward_pre_hook(lambda m, a: seen.append(m.weight.stride()))
    try:
        adapted = F.adapt(prob.fast, params, prob.sx, prob.sy, _ce, 2, 0.4, mode="loop")
        out_loop = F.forward_batched(prob.fast, adapted, prob.qx, mode="loop")
    finally:
        hook.remove()
    assert seen and all(s == params[name].stride() for s in seen), (seen, params[name].stride())
    out_plain = torch.stack([
        torch.func.functional_call(prob.fast, {k: v[i].contiguous() for k, v in adapted.items()}, (prob.qx[i],))
        for i in range(2)
    ])
    torch.testing.assert_close(out_loop, out_plain, rtol=1e-10, atol=1e-12)


def test_the_three_meta_gradients_agree_in_float64() -> None:
    methods = ["fastadapt", "loop_reference"]
    try:
        import higher  # noqa: F401

        methods.append("higher")
    except ImportError:
        pass
    diffs = check_meta_gradients(MAMLSpeedConfig(**TINY), 0, methods)
    assert set(diffs) == set(methods)
    assert diffs["loop_reference"] == 0.0
    assert all(d < 1e-10 for d in diffs.values()), diffs


@pytest.mark.bench
def test_maml_speed_benchmark_runs_small(tmp_path: Path) -> None:
    """End to end with tiny settings (timings not checked): one row per method and meta-batch."""
    cfg = MAMLSpeedConfig(**TINY, meta_batch=[2], repeats=2, warmup=0, methods=["fastadapt", "loop_reference"])
    ctx = BenchContext(out=tmp_path)
    rows = run_maml_speed(cfg, ctx)
    assert [r.method for r in rows] == ["fastadapt", "loop_reference", "forward_backward"]
    assert all(r.setting == {"meta_batch": 2} and r.mean > 0 and r.n == 2 for r in rows)
    assert rows[0].extra["rel_diff"] < 1e-8
    assert any("agreement" in n for n in ctx.notes)
