import numpy as np
import pytest
import torch

from dspo.learners.normalizers import BoundsNormalizer, GaussianNormalizer


def test_gaussian_round_trip_and_moments():
    x = np.random.default_rng(0).normal(3.0, 2.0, (5000, 4)).astype(np.float32)
    norm = GaussianNormalizer.fit(x)
    z = norm.normalize(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-3)
    np.testing.assert_allclose(norm.unnormalize(z), x, atol=1e-4)
    zt = norm.normalize(torch.as_tensor(x))
    np.testing.assert_allclose(zt.numpy(), z, atol=1e-5)


def test_gaussian_constant_feature_is_finite_and_serializable():
    x = np.ones((10, 2), dtype=np.float32)
    norm = GaussianNormalizer.fit(x)
    assert np.all(np.isfinite(norm.normalize(x)))
    again = GaussianNormalizer.from_state_dict(norm.state_dict())
    np.testing.assert_array_equal(again.std, norm.std)
    with pytest.raises(ValueError):
        GaussianNormalizer.fit(np.zeros((0, 3)))


def test_bounds_normalizer_maps_to_unit_box():
    norm = BoundsNormalizer([-2.0, 0.0], [2.0, 10.0])
    np.testing.assert_allclose(norm.normalize(np.array([[-2.0, 0.0], [2.0, 10.0]])), [[-1, -1], [1, 1]])
    x = np.array([[0.5, 3.0]])
    np.testing.assert_allclose(norm.unnormalize(norm.normalize(x)), x)
    with pytest.raises(ValueError):
        BoundsNormalizer([1.0], [1.0])
