"""Linear feature baseline: features, ridge fit vs numpy least squares, per-task fits, masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastadapt.ops.baseline import (
    LinearFeatureBaseline,
    fit_linear_baseline,
    linear_baseline_features,
    predict_linear_baseline,
)


def test_features_layout() -> None:
    obs = torch.tensor([[[1.0, -20.0], [2.0, 3.0]]])  # [1, T=2, 2]
    f = linear_baseline_features(obs)
    assert f.shape == (1, 2, 8)
    torch.testing.assert_close(f[0, 0], torch.tensor([1.0, -10.0, 1.0, 100.0, 0.0, 0.0, 0.0, 1.0]))
    torch.testing.assert_close(f[0, 1], torch.tensor([2.0, 3.0, 4.0, 9.0, 0.01, 1e-4, 1e-6, 1.0]))


def test_fit_matches_numpy_ridge_and_recovers_linear_targets() -> None:
    rng = np.random.default_rng(0)
    obs = torch.as_tensor(rng.normal(size=(5, 20, 3)))
    feats = linear_baseline_features(obs)
    w_true = torch.as_tensor(rng.normal(size=feats.shape[-1]))
    y = feats @ w_true
    coeffs = fit_linear_baseline(feats, y, reg_coeff=1e-10)
    torch.testing.assert_close(predict_linear_baseline(feats, coeffs), y, rtol=1e-5, atol=1e-5)
    X = feats.reshape(-1, feats.shape[-1]).numpy()
    yy = y.reshape(-1).numpy() + rng.normal(size=100)
    ref = np.linalg.solve(X.T @ X + 1e-3 * np.eye(X.shape[1]), X.T @ yy)
    got = fit_linear_baseline(feats, torch.as_tensor(yy).view(5, 20), reg_coeff=1e-3)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-6, atol=1e-8)


def test_per_task_fit_and_mask() -> None:
    rng = np.random.default_rng(1)
    obs = torch.as_tensor(rng.normal(size=(3, 4, 10, 2)))  # [tasks, envs, T, obs_dim]
    feats = linear_baseline_features(obs)
    ws = torch.as_tensor(rng.normal(size=(3, feats.shape[-1])))
    y = torch.einsum("kesf,kf->kes", feats, ws)
    mask = torch.ones(3, 4, 10)
    mask[:, :, 7:] = 0
    y_corrupt = y.clone()
    y_corrupt[:, :, 7:] = 1e6  # padding must be ignored
    coeffs = fit_linear_baseline(feats, y_corrupt, mask, batch_dims=1, reg_coeff=1e-10)
    assert coeffs.shape == (3, feats.shape[-1])
    pred = predict_linear_baseline(feats, coeffs, mask)
    torch.testing.assert_close(pred, y * mask, rtol=1e-4, atol=1e-4)
    b = LinearFeatureBaseline(reg_coeff=1e-10, batch_dims=1)
    assert torch.equal(b.predict(obs), torch.zeros(3, 4, 10))
    b.fit(obs, y_corrupt, mask)
    torch.testing.assert_close(b.predict(obs, mask), y * mask, rtol=1e-4, atol=1e-4)


def test_errors_name_argument() -> None:
    feats = torch.zeros(2, 5, 6)
    with pytest.raises(ValueError, match="returns"):
        fit_linear_baseline(feats, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="batch_dims"):
        fit_linear_baseline(feats, torch.zeros(2, 5), batch_dims=2)
    with pytest.raises(ValueError, match="coeffs"):
        predict_linear_baseline(feats, torch.zeros(5))
    with pytest.raises(ValueError, match="timesteps"):
        linear_baseline_features(torch.zeros(2, 5, 3), timesteps=torch.zeros(5))
