import math

import torch

from dinoworld.model.rope import apply_rope, grid_coords, rope_angles, rope_periods, token_coords


def test_periods_are_the_papers():
    p = rope_periods()
    assert p.shape == (10,)
    assert math.isclose(p[0].item(), 1e-2) and math.isclose(p[-1].item(), 1e2)
    ratios = p[1:] / p[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios))  # log-spaced


def test_grid_on_minus_one_one_independent_of_resolution():
    for h, w in [(4, 4), (16, 16), (7, 11)]:
        g = grid_coords(h, w)
        assert g.shape == (h * w, 2)
        assert g.min() > -1 and g.max() < 1
        assert torch.allclose(g[:, 0].reshape(h, w).mean(), torch.tensor(0.0, dtype=g.dtype), atol=1e-12)
    # the centre of a 2x2 grid block at 8x8 matches the patch centre at 4x4
    g4, g8 = grid_coords(4, 4).reshape(4, 4, 2), grid_coords(8, 8).reshape(8, 8, 2)
    assert torch.allclose(g4[1, 2], g8[2:4, 4:6].reshape(-1, 2).mean(0))


def _rotated_dot(pq, pk, head_dim=64):
    torch.manual_seed(1)
    q, k = torch.randn(1, 1, 1, head_dim), torch.randn(1, 1, 1, head_dim)
    periods = rope_periods()
    cq, sq = rope_angles(pq.view(1, 1, 3), periods)
    ck, sk = rope_angles(pk.view(1, 1, 3), periods)
    return (apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum().item()


def test_rope_dot_product_depends_only_on_relative_position():
    a = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    b = torch.tensor([1.1, 0.4, -0.7], dtype=torch.float64)
    shift = torch.tensor([2.5, 0.3, -0.1], dtype=torch.float64)
    d1, d2 = _rotated_dot(a, b), _rotated_dot(a + shift, b + shift)
    assert abs(d1 - d2) < 1e-4
    assert abs(d1 - _rotated_dot(a, b + shift)) > 1e-3  # but it does depend on the difference


def test_trailing_channels_unrotated_and_norm_preserved():
    x = torch.randn(2, 3, 5, 64)
    coords = token_coords(torch.rand(2, 5) * 4, 1, 1)  # (2, 5, 3)
    cos, sin = rope_angles(coords, rope_periods())
    y = apply_rope(x, cos, sin)
    assert torch.equal(y[..., 60:], x[..., 60:])
    assert not torch.allclose(y[..., :60], x[..., :60])
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
