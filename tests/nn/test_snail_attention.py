"""SNAIL blocks (Mishra et al. 2018): shapes and causality."""

from __future__ import annotations

import torch

from fastadapt.nn.attention import AttentionBlock, SNAILActorCritic, TCBlock


def _gen(s: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(s)


def test_block_shapes() -> None:
    x = torch.rand(3, 10, 6, generator=_gen())
    tc = TCBlock(6, 10, 4, _gen())
    assert len(tc.blocks) == 4 and tc(x).shape == (3, 10, 6 + 4 * 4)
    att = AttentionBlock(6, 5, 7, _gen())
    assert att(x).shape == (3, 10, 13)


def test_snail_is_causal_and_prefix_consistent() -> None:
    m = SNAILActorCritic(2, 3, seq_len=12, embed=8, filters=4, key_size=4, value_size=4, generator=_gen())
    x = torch.rand(4, 12, m.in_dim, generator=_gen(1))
    logits, v = m(x)
    assert logits.shape == (4, 12, 3) and v.shape == (4, 12)
    x2 = x.clone()
    x2[:, 7:] = torch.rand(4, 5, m.in_dim, generator=_gen(2))  # change only the future of step 6
    logits2, v2 = m(x2)
    assert torch.allclose(logits[:, :7], logits2[:, :7], atol=1e-5)
    assert torch.allclose(v[:, :7], v2[:, :7], atol=1e-5)
    assert not torch.allclose(logits[:, 7:], logits2[:, 7:], atol=1e-6)
    # running on a prefix gives the same outputs as the full sequence
    lp, _ = m(x[:, :5])
    assert torch.allclose(lp, logits[:, :5], atol=1e-5)
