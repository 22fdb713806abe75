import pytest
import torch

from dinoworld.encoders import load_encoder
from dinoworld.errors import UserError


@pytest.fixture(scope="module")
def dino_b_reg():
    return load_encoder("dinov2-b14-reg", weights="random")


def test_dinov2_b14_reg_shapes(dino_b_reg):
    assert dino_b_reg(torch.rand(1, 3, 224, 224)).shape == (1, 16, 16, 768)
    assert dino_b_reg(torch.rand(1, 3, 448, 896)).shape == (1, 32, 64, 768)


def test_dinov2_tokens_are_last_layernormed_patch_tokens(dino_b_reg):
    x = torch.rand(2, 3, 56, 84)
    tok = dino_b_reg(x)
    ref = dino_b_reg.model(pixel_values=(x - dino_b_reg.mean) / dino_b_reg.std).last_hidden_state
    assert torch.allclose(tok, ref[:, 5:].reshape(2, 4, 6, 768))  # CLS + 4 registers dropped
    # after the final LayerNorm (affine weights are 1/0 at init): zero mean, unit variance per token
    assert torch.allclose(tok.mean(-1), torch.zeros(2, 4, 6), atol=1e-4)


def test_frozen(dino_b_reg):
    dino_b_reg.train()  # frozen means frozen: train() keeps eval mode
    assert not dino_b_reg.training
    assert not any(p.requires_grad for p in dino_b_reg.parameters())
    x = torch.rand(1, 3, 28, 28, requires_grad=True)
    assert not dino_b_reg(x).requires_grad


def test_bad_size_is_clear_error(dino_b_reg):
    with pytest.raises(UserError, match="multiples of 14"):
        dino_b_reg(torch.rand(1, 3, 100, 224))


def test_missing_weights_is_clear_error_not_random():
    with pytest.raises(UserError, match="--encoder-weights"):
        load_encoder("dinov2-s14-reg")  # offline: not in the hub cache
    with pytest.raises(UserError, match="does not exist"):
        load_encoder("dinov2-s14", weights="/no/such/folder")


def test_local_folder_and_file_weights_round_trip(tmp_path):
    small = dict(num_hidden_layers=1)
    enc = load_encoder("dinov2-s14", weights="random", **small)
    enc.model.save_pretrained(tmp_path / "dino")
    again = load_encoder("dinov2-s14", weights=str(tmp_path / "dino"))
    x = torch.rand(1, 3, 42, 42)
    assert torch.equal(enc(x), again(x))
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in enc.model.state_dict().items()}, tmp_path / "w.safetensors")
    from_file = load_encoder("dinov2-s14", weights=str(tmp_path / "w.safetensors"), **small)
    assert torch.equal(enc(x), from_file(x))


def test_siglip2_architecture_random_weights():
    enc = load_encoder("siglip2-so400m14", weights="random", num_hidden_layers=1)
    assert enc.dim == 1152
    assert enc(torch.rand(1, 3, 224, 224)).shape == (1, 16, 16, 1152)
    assert enc(torch.rand(1, 3, 112, 168)).shape == (1, 8, 12, 1152)


def test_sd35_vae_concatenates_2x2_latents():
    pytest.importorskip("diffusers")
    enc = load_encoder("sd35-vae", weights="random", block_out_channels=[8, 8, 16, 16], norm_num_groups=4)
    x = torch.rand(1, 3, 64, 96)
    tok = enc(x)
    assert tok.shape == (1, 4, 6, 64) and enc.patch_size == 16
    z = enc.model.encode(x * 2 - 1).latent_dist.mean
    z = (z - enc.model.config.shift_factor) * enc.model.config.scaling_factor
    assert torch.allclose(tok[0, 1, 2, :16], z[0, :, 2, 4], atol=1e-5)  # top-left latent of patch (1, 2)
    assert torch.allclose(tok[0, 1, 2, 16:32], z[0, :, 2, 5], atol=1e-5)  # its right neighbour
    assert torch.allclose(tok[0, 1, 2, 48:], z[0, :, 3, 5], atol=1e-5)  # bottom-right


def test_standin_is_smooth_in_object_distance():
    enc = load_encoder("pixel-pyramid")
    assert not enc.pretrained and enc.dim == 36

    def disc(cx):
        yy, xx = torch.meshgrid(torch.arange(112.0), torch.arange(112.0), indexing="ij")
        img = torch.zeros(1, 3, 112, 112)
        img[:, :, ((yy - 56) ** 2 + (xx - cx) ** 2) < 36] = 1.0
        return enc(img)

    goal = disc(90)
    dists = [(disc(cx) - goal).norm().item() for cx in (20, 35, 50, 65, 80)]
    assert all(a > b for a, b in zip(dists, dists[1:]))  # cost keeps falling as the disc approaches


def test_unknown_encoder():
    with pytest.raises(UserError, match="unknown encoder"):
        load_encoder("resnet50")
