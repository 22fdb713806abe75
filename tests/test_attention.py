"""Every attention backend equals the dense-mask reference: outputs and gradients, through the predictor."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch

from dinoworld.errors import UserError
from dinoworld.model import build_predictor, compile_predictor
from dinoworld.model.attention import Visibility, flex_block_mask, plan_attention, resolve_backend


def _clip(seed: int, b: int = 3, t: int = 5, tq: int = 3, sort: bool = True):
    """Mixed frame rates (random times per item), padding, and some query frames before all context."""
    g = torch.Generator().manual_seed(seed)
    times = torch.rand(b, t, generator=g) * 2
    if sort:
        times = times.sort(dim=1).values
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, -2:] = False  # a shorter clip, padded
    q_times = torch.rand(b, tq, generator=g) * 2.2
    q_times[0, 0] = times[0].min() - 0.1  # a blind query frame: nothing is strictly earlier
    return times, mask, q_times


def _forward_backward(pred, backend, feats, times, mask, q_times, query_size=None, backward=True):
    pred.attention_backend = backend
    pred.zero_grad(set_to_none=True)
    with warnings.catch_warnings(), torch.set_grad_enabled(backward):
        warnings.simplefilter("ignore")  # eager FlexAttention on CPU warns that it is the slow reference
        out = pred(feats, times, q_times, context_mask=mask, query_size=query_size)
        if backward:
            (out * torch.linspace(-1, 1, out.numel(), device=out.device).view_as(out)).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in pred.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("backend", ["grouped", "flex"])
@pytest.mark.parametrize("case", ["sorted", "unsorted", "other-grid", "teacher-forcing"])
def test_backend_matches_dense_reference(backend, case):
    torch.manual_seed(0)
    pred = build_predictor("tiny", in_dim=16).double()
    times, mask, q_times = _clip(1, sort=case != "unsorted")
    query_size = None
    if case == "teacher-forcing":
        mask = torch.ones_like(mask)
        q_times = times[:, 1:]
    if case == "other-grid":
        query_size = (2, 3)
    feats = torch.randn(3, 5, 3, 2, 16, dtype=torch.float64)
    times, q_times = times.double(), q_times.double()
    backward = backend != "flex"  # FlexAttention has no backward on CPU: its gradients are checked on CUDA
    ref, ref_grads = _forward_backward(pred, "dense", feats, times, mask, q_times, query_size, backward)
    out, grads = _forward_backward(pred, backend, feats, times, mask, q_times, query_size, backward)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)
    assert grads.keys() == ref_grads.keys()
    for name in ref_grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-8, atol=1e-9, msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (FlexAttention's compiled kernels)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_flex_on_cuda_matches_dense_with_gradients(dtype):
    torch.manual_seed(0)
    dev = torch.device("cuda")
    pred = build_predictor("tiny", in_dim=16).to(dev, dtype)
    times, mask, q_times = (x.to(dev) for x in _clip(3))
    feats = torch.randn(3, 5, 16, 16, 16, device=dev, dtype=dtype)  # 256 tokens per frame: whole blocks
    ref, ref_grads = _forward_backward(pred, "dense", feats, times, mask, q_times)
    out, grads = _forward_backward(pred, "flex", feats, times, mask, q_times)
    # fp32: the dense fp32 reference itself is 6e-4 (of each gradient's max) away from float64 on
    # some LayerNorm gradients, so kernels with another summation order cannot be held to 1e-4
    tol = dict(rtol=2e-2, atol=2e-2) if dtype == torch.bfloat16 else dict(rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(out, ref, **tol)
    for name in ref_grads:
        scale = ref_grads[name].abs().max().clamp_min(1e-6)
        torch.testing.assert_close(grads[name] / scale, ref_grads[name] / scale, **tol, msg=name)


def test_grouped_backend_never_builds_the_dense_mask(monkeypatch):
    def refuse(self):
        raise AssertionError("the grouped backend materialised the dense mask")

    monkeypatch.setattr(Visibility, "dense", refuse)
    pred = build_predictor("tiny", in_dim=16)
    pred.attention_backend = "grouped"
    times, mask, q_times = _clip(2)
    out = pred(torch.randn(3, 5, 2, 2, 16), times, q_times, context_mask=mask)
    assert torch.isfinite(out).all()


def test_blind_query_frames_get_no_attention_in_every_backend():
    """A query frame before every context frame ignores the context: its prediction does not change
    when the context does."""
    pred = build_predictor("tiny", in_dim=16)
    times = torch.tensor([[1.0, 2.0]])
    q_times = torch.tensor([[0.5, 3.0]])
    for backend in ("dense", "grouped", "flex"):
        pred.attention_backend = backend
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            a = pred(torch.randn(1, 2, 2, 2, 16), times, q_times)
            b = pred(torch.randn(1, 2, 2, 2, 16), times, q_times)
        torch.testing.assert_close(a[:, 0], b[:, 0])
        assert not torch.allclose(a[:, 1], b[:, 1])


def test_plan_skips_the_mask_when_everything_is_visible():
    times = torch.tensor([[0.0, 0.1], [0.0, 0.2]])
    q_times = torch.tensor([[0.3], [0.4]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    assert plan_attention(times, mask, q_times, 4, 4, "grouped", torch.float32) is None
    plan = plan_attention(times, mask, times[:, 1:], 4, 4, "dense", torch.float32)
    assert plan is not None and plan.dense.shape == (2, 1, 4, 8) and plan.keep is None


def test_auto_backend_is_grouped_on_cpu_and_unknown_names_are_refused():
    assert resolve_backend("auto", torch.device("cpu")) == "grouped"
    assert resolve_backend("dense", torch.device("cpu")) == "dense"
    with pytest.raises(UserError, match="unknown attention backend"):
        resolve_backend("sparse", torch.device("cpu"))


@pytest.mark.parametrize("hw_q,hw_kv", [(4, 6), (256, 256), (100, 300)])
def test_flex_block_mask_equals_the_token_level_construction(hw_q, hw_kv):
    """The block mask built from frame-level counts equals FlexAttention's own, built by evaluating
    the mask_mod on every token pair (tiles that straddle frames included)."""
    from torch.nn.attention.flex_attention import create_block_mask

    times, mask, q_times = _clip(4)
    vis = Visibility(times, mask, q_times, hw_q, hw_kv)
    ours = flex_block_mask(vis)
    theirs = create_block_mask(lambda b, h, q, kv: vis.mask_mod(b, h, q, kv), 3, None, 3 * hw_q, 5 * hw_kv)
    assert torch.equal(ours.to_dense(), theirs.to_dense())
    assert torch.equal(ours.kv_num_blocks, theirs.kv_num_blocks)
    assert torch.equal(ours.full_kv_num_blocks, theirs.full_kv_num_blocks)
    dense = vis.dense()[:, 0]
    tiles = torch.nn.functional.pad(dense, (0, -dense.shape[-1] % 128, 0, -dense.shape[-2] % 128))
    visible_tiles = tiles.unflatten(1, (-1, 128)).unflatten(3, (-1, 128)).any(dim=(2, 4))
    assert torch.equal(ours.to_dense()[:, 0].bool(), visible_tiles)


@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")),
                    reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_blocks_match_eager():
    """``compile_predictor(..., "blocks")`` changes no output (CPU inductor; slow path kept small)."""
    pred = build_predictor("tiny", in_dim=16)
    times, mask, q_times = _clip(5)
    feats = torch.randn(3, 5, 2, 2, 16)
    with torch.no_grad():
        eager = pred(feats, times, q_times, context_mask=mask)
        compile_predictor(pred, "blocks")
        compiled = pred(feats, times, q_times, context_mask=mask)
    torch._dynamo.reset()
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    with pytest.raises(UserError, match="unknown compile mode"):
        compile_predictor(pred, "fast")


def test_training_compile_mode_resolution():
    from dinoworld.train.config import TrainConfig
    from dinoworld.train.loop import compile_mode

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    cfg = TrainConfig()
    cfg.model.size = "base"
    assert compile_mode(cfg, cpu) == "none" and compile_mode(cfg, cuda) == "model"
    cfg.model.size = "giant"  # FSDP2 by default: blocks are sharded one by one
    assert compile_mode(cfg, cuda) == "blocks"
    cfg.model.size, cfg.activation_checkpointing = "base", True
    assert compile_mode(cfg, cuda) == "blocks"
    cfg.compile = "none"
    assert compile_mode(cfg, cuda) == "none"


def test_flex_path_traces_into_one_graph_without_breaks():
    """The CUDA training path has no host sync or data-dependent Python branch: dynamo captures the
    whole predictor (mask planning, padding, blind frames, actions) as one graph. Traced on CPU under
    no_grad (FlexAttention has no CPU backward); nothing is compiled."""
    import torch._dynamo as dynamo

    pred = build_predictor("tiny", in_dim=16, action_dim=3)
    pred.attention_backend = "flex"
    times, mask, q_times = _clip(6)
    with torch.no_grad():
        explained = dynamo.explain(pred)(torch.randn(3, 5, 2, 2, 16), times, q_times, torch.randn(3, 3, 3),
                                         context_mask=mask)
    dynamo.reset()
    assert explained.graph_break_count == 0, [r.reason for r in explained.break_reasons]
    assert explained.graph_count == 1
