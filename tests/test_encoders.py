import re

import pytest
import torch

from dinoworld.encoders import ENCODER_NAMES, load_encoder
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


def _scene(disc_xy, block_xy, size=56):
    """White frame, a neutral grey 16-px square block and a blue disc 2 px across (PushT's pusher at 56 px)."""
    yy, xx = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    img = torch.ones(3, size, size)
    bx, by = block_xy
    img[:, (abs(xx - bx) < 8) & (abs(yy - by) < 8)] = 0.5
    img[:, (xx - disc_xy[0]) ** 2 + (yy - disc_xy[1]) ** 2 < 1.5] = torch.tensor([0.25, 0.41, 0.88])[:, None]
    return img


def test_opponent_standin_weighs_a_small_object_of_its_own_hue():
    gen = torch.Generator().manual_seed(0)
    scenes = torch.stack([_scene(*(torch.rand(2, 2, generator=gen) * 36 + 10).tolist()) for _ in range(64)])
    ratios = {}
    for name in ("pixel-pyramid", "pixel-pyramid-opponent"):
        enc = load_encoder(name)
        assert enc.dim == 36 and not enc.pretrained
        std = enc(scenes).reshape(-1, enc.dim).std(0).clamp_min(1e-3)  # the predictor's standardisation

        def cost(a, b):
            return (((enc(a[None]) - enc(b[None])) / std) ** 2).mean().item()

        start = _scene((20, 20), (36, 36))
        ratios[name] = cost(_scene((28, 20), (36, 36)), start) / cost(_scene((20, 20), (44, 36)), start)
    assert ratios["pixel-pyramid"] < 0.25  # moving the disc 8 px counts a fraction of moving the block 8 px
    assert ratios["pixel-pyramid-opponent"] > 0.5
    assert ratios["pixel-pyramid-opponent"] > 3 * ratios["pixel-pyramid"]


def test_unknown_encoder():
    with pytest.raises(UserError, match="unknown encoder") as err:
        load_encoder("resnet50")
    assert "hf:<hub id or folder>" in str(err.value)


# ------------------------------------------------------------- DINOv2 files in the torch.hub format
def to_torch_hub(sd: dict) -> dict:
    """The inverse of the loader's mapping: a transformers DINOv2 state dict in the key names of
    facebookresearch/dinov2 (what torch.hub saves as e.g. dinov2_vitb14_reg4_pretrain.pth)."""
    top = {"embeddings.cls_token": "cls_token", "embeddings.position_embeddings": "pos_embed",
           "embeddings.register_tokens": "register_tokens", "embeddings.mask_token": "mask_token",
           "embeddings.patch_embeddings.projection": "patch_embed.proj", "layernorm": "norm"}
    block = {"norm1": "norm1", "attention.o_proj": "attn.proj", "layer_scale1.lambda1": "ls1.gamma",
             "norm2": "norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2", "mlp.down_proj": "mlp.w3",
             "layer_scale2.lambda1": "ls2.gamma"}
    out = {}
    for key, value in sd.items():
        if m := re.match(r"encoder\.layer\.(\d+)\.(.+)", key):
            i, rest = m.groups()
            part, _, leaf = rest.rpartition(".")
            if rest in block:
                out[f"blocks.{i}.{block[rest]}"] = value
            elif part == "attention.q_proj":  # query, key, value fused into one (3D, D) projection
                out[f"blocks.{i}.attn.qkv.{leaf}"] = torch.cat(
                    [sd[f"encoder.layer.{i}.attention.{p}.{leaf}"] for p in ("q_proj", "k_proj", "v_proj")])
            elif part == "mlp.gate_proj":  # SwiGLU (giant): gate and up fused, gate first
                out[f"blocks.{i}.mlp.w12.{leaf}"] = torch.cat(
                    [sd[f"encoder.layer.{i}.mlp.{p}.{leaf}"] for p in ("gate_proj", "up_proj")])
            elif part in block:
                out[f"blocks.{i}.{block[part]}.{leaf}"] = value
        else:
            stem, _, leaf = key.rpartition(".")
            out[top[key] if key in top else f"{top[stem]}.{leaf}"] = value
    assert len(out) == len(sd) - sum("k_proj" in k or "v_proj" in k or "up_proj" in k for k in sd)
    return {k: v.clone() for k, v in out.items()}


@pytest.mark.parametrize("name,arch", [
    ("dinov2-s14-reg", dict(num_hidden_layers=2)),
    ("dinov2-s14", dict(num_hidden_layers=2)),
    # the giant's fused SwiGLU, at a small width (so the file is not named after a released variant)
    ("dinov2-g14", dict(num_hidden_layers=1, hidden_size=96, num_attention_heads=2, intermediate_size=384)),
])
def test_torch_hub_checkpoint_loads_with_identical_tokens(tmp_path, name, arch):
    enc = load_encoder(name, weights="random", **arch)
    for p in enc.model.parameters():  # layer scale, registers and mask token are constants at init
        p.data.normal_(0, 0.1)
    file = tmp_path / "dinov2_hub.pth"
    torch.save(to_torch_hub(enc.model.state_dict()), file)
    again = load_encoder(name, weights=str(file), **arch)
    x = torch.rand(2, 3, 56, 70)
    assert torch.allclose(enc(x), again(x), atol=1e-6, rtol=0)


def test_torch_hub_checkpoint_of_another_variant_is_refused(tmp_path):
    small = dict(num_hidden_layers=1)
    plain = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(to_torch_hub(load_encoder("dinov2-s14", weights="random", **small).model.state_dict()), plain)
    with pytest.raises(UserError) as err:
        load_encoder("dinov2-s14-reg", weights=str(plain), **small)
    msg = str(err.value)
    assert "\n" not in msg and "without registers" in msg and "use encoder dinov2-s14 for this file" in msg
    assert "dinov2_vits14_reg4_pretrain.pth" in msg  # the file the user asked for
    with pytest.raises(UserError, match="ViT-S/14 without registers.*but dinov2-b14 is ViT-B/14"):
        load_encoder("dinov2-b14", weights=str(plain), **small)


def test_torch_hub_cache_is_used_when_the_hf_cache_lacks_the_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(UserError, match="no torch.hub checkpoint .*dinov2_vits14_reg4_pretrain.pth"):
        load_encoder("dinov2-s14-reg", num_hidden_layers=1)  # offline, neither cache has it
    enc = load_encoder("dinov2-s14-reg", weights="random", num_hidden_layers=1)
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(to_torch_hub(enc.model.state_dict()),
               tmp_path / "torch" / "hub" / "checkpoints" / "dinov2_vits14_reg4_pretrain.pth")
    found = load_encoder("dinov2-s14-reg", num_hidden_layers=1)
    assert "using the torch.hub checkpoint" in capsys.readouterr().err
    x = torch.rand(1, 3, 28, 42)
    assert torch.equal(enc(x), found(x))


# ------------------------------------------------------------------------------------------ DINOv3
@pytest.mark.parametrize("name,dim,layers,heads", [("dinov3-s16", 384, 12, 6), ("dinov3-b16", 768, 12, 12),
                                                   ("dinov3-l16", 1024, 24, 16)])
def test_dinov3_architectures(name, dim, layers, heads):
    assert name in ENCODER_NAMES
    enc = load_encoder(name, weights="random", num_hidden_layers=1)
    cfg = enc.model.config
    assert (enc.dim, cfg.num_attention_heads, cfg.intermediate_size) == (dim, heads, 4 * dim)
    assert cfg.num_register_tokens == 4 and cfg.layerscale_value == 1.0 and not cfg.use_gated_mlp
    assert enc.patch_size == 16 and type(enc.model).__name__ == "DINOv3ViTModel"
    assert enc(torch.rand(1, 3, 224, 224)).shape == (1, 14, 14, dim)
    assert enc(torch.rand(1, 3, 64, 112)).shape == (1, 4, 7, dim)  # RoPE: any multiple of 16
    from dinoworld.encoders.hf import DINOV3_ARCH

    assert DINOV3_ARCH[name.split("-")[1]][1] == layers


def test_dinov3_tokens_are_final_normed_patch_tokens():
    enc = load_encoder("dinov3-s16", weights="random", num_hidden_layers=1)
    x = torch.rand(2, 3, 48, 64)
    ref = enc.model(pixel_values=(x - enc.mean) / enc.std).last_hidden_state
    assert torch.equal(enc(x), ref[:, 5:].reshape(2, 3, 4, 384))  # CLS + 4 registers dropped
    assert torch.allclose(enc(x).mean(-1), torch.zeros(2, 3, 4), atol=1e-4)  # after the final LayerNorm
    with pytest.raises(UserError, match="multiples of 16"):
        enc(torch.rand(1, 3, 56, 56))


def test_dinov3_weights_from_a_folder(tmp_path):
    enc = load_encoder("dinov3-s16", weights="random", num_hidden_layers=1)
    enc.model.save_pretrained(tmp_path / "v3")
    again = load_encoder("dinov3-s16", weights=str(tmp_path / "v3"))
    x = torch.rand(1, 3, 32, 48)
    assert torch.equal(enc(x), again(x))
    with pytest.raises(UserError, match="--encoder-weights"):
        load_encoder("dinov3-b16")  # offline: not in the hub cache


# -------------------------------------------------------------------------- hf:<hub id or folder>
def test_hf_prefix_loads_a_saved_transformers_model(tmp_path):
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    ref = Dinov2WithRegistersModel(Dinov2WithRegistersConfig(
        hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128, patch_size=8,
        image_size=64, num_register_tokens=2)).eval()
    ref.save_pretrained(tmp_path / "tiny")
    (tmp_path / "tiny" / "preprocessor_config.json").write_text(
        '{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}')
    enc = load_encoder(f"hf:{tmp_path / 'tiny'}")
    assert enc.name == f"hf:{tmp_path / 'tiny'}" and enc.patch_size == 8 and enc.dim == 64
    x = torch.rand(2, 3, 32, 48)
    tok = enc(x)
    assert tok.shape == (2, 4, 6, 64)
    with torch.no_grad():
        want = ref(pixel_values=(x - 0.5) / 0.25).last_hidden_state[:, 3:]  # CLS + 2 registers inferred
    assert torch.allclose(tok, want.reshape(2, 4, 6, 64), atol=1e-6)
    with pytest.raises(UserError, match="multiples of 8"):
        enc(torch.rand(1, 3, 30, 32))


def test_hf_prefix_vit_without_preprocessor_uses_imagenet_stats(tmp_path):
    from transformers import ViTConfig, ViTModel

    ref = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                             patch_size=4, image_size=16), add_pooling_layer=False).eval()
    ref.save_pretrained(tmp_path / "vit")
    enc = load_encoder(f"hf:{tmp_path / 'vit'}")
    x = torch.rand(1, 3, 24, 16)  # another size than the config's: position embeddings interpolated
    with torch.no_grad():
        want = ref(pixel_values=(x - enc.mean) / enc.std, interpolate_pos_encoding=True).last_hidden_state[:, 1:]
    assert torch.allclose(enc.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    assert torch.allclose(enc(x), want.reshape(1, 6, 4, 32), atol=1e-6)


def test_hf_prefix_missing_folder_is_one_clear_line(tmp_path):
    with pytest.raises(UserError) as err:
        load_encoder(f"hf:{tmp_path / 'nope'}")
    msg = str(err.value)
    assert "\n" not in msg and "does not exist" in msg and "hf:<hub id>" in msg
    with pytest.raises(UserError, match="drop num_hidden_layers"):
        load_encoder(f"hf:{tmp_path}", num_hidden_layers=1)
