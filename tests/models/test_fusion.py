"""Fusion encoder: ``multiscale`` vs a small PyTorch module written from spec §2.7 (fp32), and the variants."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch import nn as tnn
from flax.linen import meta  # noqa: E402

flax_unbox = meta.unbox

from emox_jax.convert.reference_ckpt import multiscale_fusion_params
from emox_jax.models.fusion import FusionConfig, FusionEncoder, MultiScaleFusion
from tests.models.test_qformer import quick_jit


class TorchMultiScale(tnn.Module):
    """Spec §2.7 with the reference's attribute names (audio_proj, visual_proj, cross_attns, ffns, gate_mlp)."""

    def __init__(self, da, dv, h, heads, out_dim):
        super().__init__()
        self.audio_proj, self.visual_proj = tnn.Linear(da, h), tnn.Linear(dv, h)
        self.cross_attns = tnn.ModuleList([tnn.MultiheadAttention(h, heads, dropout=0.1, batch_first=True)
                                           for _ in range(3)])
        self.ffns = tnn.ModuleList([tnn.Sequential(tnn.LayerNorm(h), tnn.Linear(h, h), tnn.GELU(), tnn.Dropout(0.1),
                                                   tnn.Linear(h, h)) for _ in range(3)])
        self.gate_mlp = tnn.Sequential(tnn.Linear(3 * h, h), tnn.GELU(), tnn.Dropout(0.1), tnn.Linear(h, 3),
                                       tnn.Softmax(dim=-1))
        self.multi_llama_proj = tnn.Linear(h, out_dim)

    def forward(self, audio, visual):
        fs = []
        for i, (a, v) in enumerate(zip(torch.chunk(audio, 3, -1), torch.chunk(visual, 3, -1))):
            a, v = self.audio_proj(a), self.visual_proj(v)
            r = self.cross_attns[i](a, v, v)[0] + a
            fs.append(r + self.ffns[i](r))
        g = self.gate_mlp(torch.cat(fs, -1).mean(1))
        fused = sum(g[:, i, None, None] * f for i, f in enumerate(fs))
        return self.multi_llama_proj(fused.mean(1)).unsqueeze(1), g


def torch_state(m: tnn.Module) -> dict:
    sd = {}
    for k, v in m.state_dict().items():
        name = k if k.startswith("multi_llama_proj") else "multi_multiscale_fusion." + k
        sd[name] = v.detach().numpy()
    return sd


@pytest.mark.slow
def test_multiscale_matches_torch_spec_module():
    cfg = FusionConfig.tiny("multiscale")
    torch.manual_seed(0)
    tm = TorchMultiScale(cfg.audio_dim, cfg.visual_dim, cfg.hidden_dim, cfg.num_heads, cfg.out_dim).eval()
    with torch.no_grad():
        for mha in tm.cross_attns:
            mha.in_proj_bias.normal_()
    audio, visual = torch.randn(2, 8, 3 * cfg.audio_dim), torch.randn(2, 5, 3 * cfg.visual_dim)
    with torch.no_grad():
        want, want_gate = tm(audio, visual)
    params = multiscale_fusion_params(torch_state(tm), cfg, set(), "test")

    @quick_jit
    def run(params, audio, visual):  # both applies in one compile
        out = FusionEncoder(cfg).apply({"params": params}, audio, visual)
        return out, MultiScaleFusion(cfg).apply({"params": params["fusion"]}, audio, visual, return_gate=True)[1]

    with jax.default_matmul_precision("highest"):
        got, gate = run(params, jnp.asarray(audio.numpy()), jnp.asarray(visual.numpy()))
    assert got.shape == (2, 1, cfg.out_dim)
    assert float(np.max(np.abs(np.asarray(got) - want.numpy()))) <= 1e-4
    np.testing.assert_allclose(np.asarray(gate), want_gate.numpy(), atol=1e-5)


def test_multiscale_real_preset_param_count():
    cfg = FusionConfig.multiscale()
    x = jnp.zeros((1, 8, 3072))
    shapes = jax.eval_shape(FusionEncoder(cfg).init, jax.random.key(0), x, x)
    # spec §6: multiscale fusion 6,568,963 + multi_llama_proj 787,968
    assert sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(shapes)) == 6_568_963 + 787_968


@functools.cache
def variant_run(kind: str) -> dict:
    """A tiny variant applied to (audio, visual) and with sample 1's inputs replaced: one jitted function.

    Params: the shapes (and logical names) of the variant's own init, traced abstractly, filled with seeded
    N(0, 0.1^2) values (non-zero biases too). Compiling the init itself would cost ~4x the apply's compile.
    """
    cfg = FusionConfig.tiny(kind, num_tokens=1)
    rng = np.random.default_rng(0)
    audio = rng.normal(size=(2, 8, cfg.audio_dim)).astype(np.float32)
    visual = rng.normal(size=(2, 6, cfg.visual_dim)).astype(np.float32)
    audio2, visual2 = audio.copy(), visual.copy()
    audio2[1], visual2[1] = rng.normal(size=audio2[1].shape), rng.normal(size=visual2[1].shape)
    m = FusionEncoder(cfg)

    abstract = jax.eval_shape(m.init, jax.random.key(0), audio, visual)
    params = jax.tree.map(lambda s: (0.1 * rng.normal(size=s.shape)).astype(s.dtype), abstract)

    @quick_jit
    def run(params, audio, visual, audio2, visual2):
        return m.apply(params, audio, visual), m.apply(params, audio2, visual2)

    out, out2 = run(params, audio, visual, audio2, visual2)
    return dict(cfg=cfg, model=m, audio=audio, visual=visual, params=params, out=np.asarray(out), out2=np.asarray(out2))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["attention", "qformer", "densemoe"])
def test_variants_share_the_interface(kind):
    r = variant_run(kind)
    out = r["out"]
    assert out.shape == (2, 1, r["cfg"].out_dim) and bool(np.all(np.isfinite(out)))
    # each sample's output depends on that sample only: new inputs for sample 1 leave sample 0's output alone
    np.testing.assert_allclose(r["out2"][:1], out[:1], atol=1e-5)
    assert not np.allclose(r["out2"][1:], out[1:], atol=1e-4)
    with pytest.raises(ValueError, match="expected audio features"):
        r["model"].apply(r["params"], jnp.asarray(r["audio"][..., :-1]), jnp.asarray(r["visual"]))


def test_attention_variant_matches_its_formula():
    r = variant_run("attention")  # that variant's params and its output on (a, v)
    a, v = r["audio"], r["visual"]
    p = jax.tree.map(np.asarray, flax_unbox(r["params"])["params"]["fusion"])
    lin = lambda x, q: x @ q["kernel"] + q["bias"]  # noqa: E731
    ve, ae = lin(v.mean(1), p["multi_video_embs"]), lin(a.mean(1), p["multi_audio_embs"])
    w = lin(lin(np.concatenate([ve, ae], -1), p["attention_mlp"]), p["fc_att"])
    want = lin(w[:, :1] * ve + w[:, 1:] * ae, p["multi_llama_proj"])
    np.testing.assert_allclose(r["out"][:, 0], want, atol=1e-4)


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="not one of"):
        FusionConfig.tiny("sparsemoe").validate()
