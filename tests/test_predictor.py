import pytest
import torch

from dinoworld.errors import UserError
from dinoworld.model import build_predictor, copy_last_prediction, count_parameters, prediction_loss


def _count(size, **kw):
    with torch.device("meta"):
        return count_parameters(build_predictor(size, **kw))


@pytest.mark.parametrize("size,paper,unit", [("base", 86, 1e6), ("large", 304, 1e6), ("giant", 1.1, 1e9)])
def test_parameter_counts_match_paper_table5(size, paper, unit):
    total = _count(size)["total"]
    # Table 5 rounds to 86M / 304M / 1.1B: the exact architecture must round to the same figure.
    # (Giant is 1.136B, i.e. +3.2 % over the rounded "1.1B", and rounds to it.)
    ndigits = 0 if unit == 1e6 else 1
    assert round(total / unit, ndigits) == paper
    assert abs(total / (paper * unit) - 1) < 0.035


def test_action_blocks_on_base_add_about_22m():
    counts = _count("base", action_dim=10)
    assert counts["base"] == _count("base")["total"]
    assert abs(counts["action"] / 22e6 - 1) < 0.05  # 21.3M: MLP 2D'->D'->D' per block + Linear(10->768)


def _inputs(b=2, t=4, h=3, w=5, d=16):
    torch.manual_seed(3)
    x = torch.randn(b, t, h, w, d)
    times = (torch.rand(b, t) * 0.5 + 0.05).cumsum(1)
    return x, times


def _tiny(**kw):
    return build_predictor("tiny", in_dim=16, **kw).eval()


def test_teacher_forcing_shapes_and_causality_exact():
    m = _tiny()
    x, t = _inputs()
    y = m(x, t, t[:, 1:])
    assert y.shape == (2, 3, 3, 5, 16)
    # changing frames at or after a query's timestamp changes nothing for that query (exactly)
    for k in range(1, 4):
        x2 = x.clone()
        x2[:, k:] = torch.randn_like(x2[:, k:]) * 10
        y2 = m(x2, t, t[:, 1:])
        assert torch.equal(y[:, : k], y2[:, : k]), k  # query j predicts frame j+1 and sees frames <= j
        if k < 3:
            assert not torch.allclose(y[:, k:], y2[:, k:])


def test_query_sees_strictly_earlier_frames_only():
    m = _tiny()
    x, t = _inputs()
    q = t[:, 2:3].clone()  # query exactly at frame 2's time: frame 2 itself must be invisible
    y = m(x, t, q)
    x2 = x.clone()
    x2[:, 2:] += 5
    assert torch.equal(y, m(x2, t, q))


def test_time_shift_invariance():
    m = _tiny()
    x, t = _inputs()
    y = m(x, t, t[:, 1:] + 0.1)
    y2 = m(x, t + 123.25, t[:, 1:] + 123.35)
    assert torch.allclose(y, y2, atol=1e-4)
    assert not torch.allclose(y, m(x, t, t[:, 1:] + 0.3), atol=1e-4)  # but the gap matters


def test_resolution_independent_grid():
    m = _tiny()
    x, t = _inputs(h=4, w=4)
    assert m(x, t, t[:, -1:] + 0.2).shape == (2, 1, 4, 4, 16)
    x8 = torch.randn(2, 4, 8, 6, 16)
    assert m(x8, t, t[:, -1:] + 0.2).shape == (2, 1, 8, 6, 16)
    # queries on another grid than the context
    assert m(x, t, t[:, -1:] + 0.2, query_size=(2, 3)).shape == (2, 1, 2, 3, 16)


def test_variable_context_length_and_fps_in_one_batch():
    m = _tiny()
    x, _ = _inputs(b=2, t=5)
    t = torch.stack([torch.arange(5) * 0.1, torch.arange(5) * 0.4])  # 10 FPS and 2.5 FPS
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])  # 2nd clip has 3 frames
    q = torch.tensor([[0.5, 0.6, 0.9], [1.0, 1.3, 2.0]])  # any number of queries, any timestamps
    y = m(x, t, q, context_mask=mask)
    assert y.shape == (2, 3, 3, 5, 16)
    alone = m(x[1:, :3], t[1:, :3], q[1:])
    assert torch.allclose(y[1:], alone, atol=1e-5)  # padding frames are invisible
    first = m(x[:1], t[:1], q[:1])
    assert torch.allclose(y[:1], first, atol=1e-5)


def test_query_without_visible_context_is_finite():
    m = _tiny()
    x, t = _inputs()
    y = m(x, t, t[:, :1] - 1.0)  # before every context frame
    assert torch.isfinite(y).all()


def test_fresh_action_blocks_are_identity():
    m = _tiny()
    x, t = _inputs()
    y = m(x, t, t[:, 1:])
    m.add_action_blocks(6)
    a = torch.randn(2, 3, 6)
    assert torch.equal(y, m(x, t, t[:, 1:], actions=a))
    # once gamma moves away from zero, actions matter
    with torch.no_grad():
        for blk in m.action_blocks:
            blk.gamma.fill_(0.5)
    assert not torch.allclose(y, m(x, t, t[:, 1:], actions=a))


def test_built_with_actions_equals_same_weights_without():
    with_a = _tiny(action_dim=4)
    without = _tiny()
    missing = without.load_state_dict(with_a.state_dict(), strict=False)
    assert missing.missing_keys == [] and all(k.startswith("action") for k in missing.unexpected_keys)
    x, t = _inputs()
    assert torch.equal(with_a(x, t, t[:, 1:], actions=torch.randn(2, 3, 4)), without(x, t, t[:, 1:]))


def test_actions_without_action_blocks_is_an_error():
    m = _tiny()
    x, t = _inputs()
    with pytest.raises(UserError, match="no action blocks"):
        m(x, t, t[:, 1:], actions=torch.zeros(2, 3, 2))


def test_loss_is_smooth_l1_beta_point_one():
    p, y = torch.zeros(4), torch.tensor([0.05, -0.05, 0.5, -1.0])
    expected = torch.tensor([0.05**2 / 0.2, 0.05**2 / 0.2, 0.45, 0.95]).mean()
    assert torch.allclose(prediction_loss(p, y), expected)


def test_training_step_reduces_loss_and_grad_checkpointing_matches():
    m = build_predictor("tiny", in_dim=16)
    x, t = _inputs()
    x = x[:, :1].expand_as(x).contiguous()  # a static scene: the future is learnable
    loss = prediction_loss(m(x, t, t[:, 1:]), x[:, 1:])
    loss.backward()
    g1 = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    m.grad_checkpointing = True
    prediction_loss(m(x, t, t[:, 1:]), x[:, 1:]).backward()
    for a, p in zip(g1, m.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-6)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for _ in range(60):
        opt.zero_grad()
        l = prediction_loss(m(x, t, t[:, 1:]), x[:, 1:])
        l.backward()
        opt.step()
    assert l.item() < loss.item() * 0.75


def test_copy_last_baseline_picks_latest_earlier_frame():
    x, t = _inputs()
    q = torch.stack([t[:, 1], t[:, 3] + 1.0], dim=1)
    c = copy_last_prediction(x, t, q)
    assert torch.equal(c[:, 0], x[:, 0]) and torch.equal(c[:, 1], x[:, 3])


def test_bad_configs_are_clear_errors():
    with pytest.raises(UserError, match="unknown predictor size"):
        build_predictor("huge")
    with pytest.raises(UserError, match="divisible"):
        build_predictor("tiny", num_heads=3)


def test_standardize_and_residual_options():
    """Off by default (the paper's architecture); standardize reads/predicts standardised features and
    keeps its statistics with the weights; residual adds the latest strictly-earlier context frame."""
    from dinoworld.model import build_predictor

    assert not build_predictor("tiny", in_dim=8).cfg.standardize
    torch.manual_seed(0)
    p = build_predictor("tiny", in_dim=8, depth=1, standardize=True, residual=True).eval()
    feats = torch.randn(64, 8) * torch.linspace(0.01, 10, 8) + 3.0
    p.set_feature_stats(feats)
    assert torch.allclose(p.feature_mean, feats.mean(0), atol=1e-5)
    z = p.standardize(feats)
    assert torch.allclose(z.mean(0), torch.zeros(8), atol=1e-4) and torch.allclose(p.destandardize(z), feats, atol=1e-4)
    assert {"feature_mean", "feature_std"} <= set(p.state_dict())
    with torch.no_grad():
        p.out_proj.weight.zero_()
        p.out_proj.bias.zero_()  # the predicted change is zero: the output is the latest earlier frame
    ctx = torch.randn(1, 3, 2, 2, 8)
    times = torch.tensor([[0.0, 0.5, 1.0]])
    out = p(ctx, times, torch.tensor([[0.7, 1.5]]))
    torch.testing.assert_close(out[0, 0], ctx[0, 1], rtol=1e-5, atol=1e-5)  # latest before 0.7 is t=0.5
    torch.testing.assert_close(out[0, 1], ctx[0, 2], rtol=1e-5, atol=1e-5)  # latest before 1.5 is t=1.0


def test_context_mean_baseline():
    from dinoworld.model import context_mean_prediction

    ctx = torch.stack([torch.zeros(2, 2, 3), torch.full((2, 2, 3), 4.0)])[None]  # (1, 2, 2, 2, 3)
    out = context_mean_prediction(ctx, torch.tensor([[1.0, 2.0, 3.0]]))
    assert out.shape == (1, 3, 2, 2, 3) and torch.all(out == 2.0)


def test_running_mean_baseline_and_the_training_loss_beside_both_baselines():
    """Under teacher forcing frame t + 1's context mean is the mean of frames 1..t; the loss function
    returns copy-last's and its losses, worked out by hand on a ramp x_t = t."""
    from dinoworld.model import running_mean_prediction
    from dinoworld.train.step import BASELINES, teacher_forcing_loss

    ramp = torch.arange(1.0, 5.0).view(1, 4, 1, 1, 1).expand(2, 4, 2, 2, 3)  # frames 1, 2, 3, 4
    means = running_mean_prediction(ramp)
    assert means.shape == (2, 3, 2, 2, 3)
    torch.testing.assert_close(means[0, :, 0, 0, 0], torch.tensor([1.0, 1.5, 2.0]))

    class Exact(torch.nn.Module):  # predicts every target exactly
        def forward(self, feats, times, query_times, actions=None):
            return feats[:, 1:]

    loss, baselines = teacher_forcing_loss(Exact(), ramp, torch.arange(4.0).expand(2, 4))
    assert BASELINES == ("copy_last", "context_mean") and loss.item() == 0.0
    # smooth L1 (beta 0.1) of errors |d| >= 0.1 is |d| - 0.05: copy-last misses by 1, 1, 1; the mean by 1, 1.5, 2
    torch.testing.assert_close(baselines, torch.tensor([0.95, 1.45]))


def test_value_rope_tells_a_query_where_what_it_read_came_from():
    """value_rope (off by default): a query that reads one context token gets an output that depends on
    the token's position *relative to the query*; without it the output is the same wherever the token is."""
    from dinoworld.model import build_predictor
    from dinoworld.model.rope import rope_angles

    def angles(pos):  # one token at (t, y, x) -> cos, sin
        return rope_angles(torch.tensor([[pos]], dtype=torch.float64), build_predictor("tiny", in_dim=8).periods)

    def read_one_token(value_rope: bool, key_pos, query_pos) -> torch.Tensor:
        torch.manual_seed(0)
        blk = build_predictor("tiny", in_dim=8, depth=1, value_rope=value_rope).blocks[0].eval()
        ctx = torch.randn(1, 1, 128)  # a single context token: the query's attention weight on it is 1
        q = torch.randn(1, 1, 128)
        with torch.no_grad():
            kv = blk.context_kv(ctx, *angles(key_pos))
            return blk.attend(q, kv, *angles(query_pos), None)

    here, there = (0.0, 0.0, 0.0), (0.0, 0.5, -0.25)
    plain = [read_one_token(False, k, (0.5, 0.0, 0.0)) for k in (here, there)]
    torch.testing.assert_close(plain[0], plain[1])  # the paper's block: position is lost in the values
    rotated = [read_one_token(True, k, (0.5, 0.0, 0.0)) for k in (here, there)]
    assert (rotated[0] - rotated[1]).abs().max() > 1e-3  # with value_rope the offset shows in the output
    shifted = read_one_token(True, (0.3, 0.75, 0.0), (0.8, 0.25, 0.25))  # both moved by (0.3, 0.25, 0.25)
    torch.testing.assert_close(shifted, rotated[1], rtol=1e-4, atol=1e-5)  # only the relative offset counts
    assert not build_predictor("tiny", in_dim=8).cfg.value_rope


def test_self_fed_prediction_feeds_each_prediction_back():
    """From frame 1 alone, as a planner rolls out: frame k+1 is predicted from the model's own frame k."""
    from dinoworld.model import self_fed_prediction

    def plus_one(feats, times, query_times, actions=None):  # latest earlier context frame + 1 + action
        return copy_last_prediction(feats, times, query_times) + 1 + actions[:, :, None, None, :1]

    feats = torch.randn(2, 4, 3, 3, 5)
    times = torch.tensor([[0.0, 0.2, 0.4, 0.6]] * 2)
    actions = torch.randn(2, 3, 2)
    steps = torch.arange(1, 4.0)[None, :] + actions[:, :, 0].cumsum(1)  # what has been added by frame k
    want = feats[:, :1] + steps[:, :, None, None, None]  # not feats[:, k-1] + 1 + a: nothing real after frame 1
    assert torch.allclose(self_fed_prediction(plus_one, feats[:, :1], times[:, :1], times[:, 1:], actions), want)
    # differentiable through the chain: the first action moves every later frame
    a = actions.clone().requires_grad_()
    self_fed_prediction(plus_one, feats[:, :1], times[:, :1], times[:, 1:], a)[:, -1].sum().backward()
    assert torch.allclose(a.grad[:, :, 0], torch.full((2, 3), 45.0))  # 3x3 tokens x 5 channels each
