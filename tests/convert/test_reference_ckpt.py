"""The reference's Nano-EmoX checkpoint -> our adapters, from a ``.pth`` built here with torch modules that
follow the spec's names and shapes (tiny widths); outputs are compared with the torch modules in fp32."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from emox_jax.convert.reference_ckpt import ReferenceAdapterConfigs, convert_reference_checkpoint
from emox_jax.models.face_encoder import FacePooling, FacePoolingConfig
from emox_jax.models.fusion import FusionConfig, FusionEncoder
from emox_jax.models.projectors import Projector, ProjectorConfig
from emox_jax.models.qformer import QFormer, QFormerConfig
from tests.convert.test_qformer_convert import to_lavis
from tests.models.test_fusion import TorchMultiScale, torch_state
from tests.models.test_qformer import hf_qformer, quick_jit

CFGS = ReferenceAdapterConfigs(
    video_qformer=QFormerConfig.tiny(num_positions=8), audio_qformer=QFormerConfig.tiny(num_positions=8),
    video_proj=ProjectorConfig.tiny(32, 40), audio_proj=ProjectorConfig.tiny(32, 40),
    face_pooling=FacePoolingConfig.tiny(), fusion=FusionConfig.tiny("multiscale"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    torch.manual_seed(0)
    q = CFGS.video_qformer
    qf = hf_qformer(q, seed=1)
    sd = {k: torch.from_numpy(v) for k, v in to_lavis({k: v.detach().numpy() for k, v in qf.state_dict().items()},
                                                        "video_Qformer.").items()}
    sd["video_Qformer.bert.embeddings.position_ids"] = torch.arange(512)[None]  # a buffer the reference keeps
    sd["video_query_tokens"] = torch.randn(1, q.num_queries, q.hidden_size)
    sd["video_frame_position_embedding.weight"] = torch.randn(q.num_positions, q.encoder_width)
    video_proj = torch.nn.Linear(32, 40)
    sd.update({"video_proj." + k: v for k, v in video_proj.state_dict().items()})
    fp = CFGS.face_pooling
    attn = torch.nn.MultiheadAttention(fp.dim, fp.num_heads, batch_first=True)
    face_proj = torch.nn.Sequential(torch.nn.Linear(fp.dim, 24), torch.nn.GELU(), torch.nn.Dropout(0.1), torch.nn.Linear(24, 40))
    sd["facial_encoder.query"] = torch.randn(fp.num_queries, fp.dim)
    sd.update({"facial_encoder.attn." + k: v for k, v in attn.state_dict().items()})
    sd.update({"facial_encoder.face_proj." + k: v for k, v in face_proj.state_dict().items()})
    sd.update({"facial_encoder.lynorm.weight": torch.ones(fp.dim), "facial_encoder.lynorm.bias": torch.zeros(fp.dim)})
    fc = CFGS.fusion
    ms = TorchMultiScale(fc.audio_dim, fc.visual_dim, fc.hidden_dim, fc.num_heads, fc.out_dim).eval()
    sd.update({k: torch.from_numpy(v) for k, v in torch_state(ms).items()})
    sd["image_llama_proj.weight"] = torch.zeros(40, 8)  # dead in the reference
    sd["llama_model.base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"] = torch.ones(2, 40)
    path = tmp_path_factory.mktemp("ref") / "checkpoint_000002.pth"
    torch.save({"model": sd, "epoch": 2}, path)
    return path, dict(qf=qf, sd=sd, video_proj=video_proj, attn=attn.eval(), face_proj=face_proj.eval(), ms=ms)


@pytest.mark.slow
def test_groups_convert_and_match_torch(reference):
    path, t = reference
    out = convert_reference_checkpoint(str(path), CFGS)
    assert set(out) == {"video_qformer", "video_proj", "face_pooling", "fusion", "lora"}
    assert list(out["lora"]) == ["llama_model.base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"]
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(2, 5, 24)).astype(np.float32)
    pos = t["sd"]["video_frame_position_embedding.weight"].numpy()[:5]
    with torch.no_grad():
        q = t["qf"](query_embeds=t["sd"]["video_query_tokens"].expand(2, -1, -1),
                    encoder_hidden_states=torch.from_numpy(feats + pos)).last_hidden_state
        want_video = t["video_proj"](q).numpy()
        f = torch.from_numpy(rng.normal(size=(2, 6, 16)).astype(np.float32))
        want_face = t["face_proj"](t["attn"](t["sd"]["facial_encoder.query"].expand(2, -1, -1), f, f)[0]).numpy()
        a3, v3 = torch.randn(2, 8, 72), torch.randn(2, 8, 60)
        want_fusion = t["ms"](a3, v3)[0].numpy()

    @quick_jit
    def run(out, feats, f, a3, v3):  # the three adapter groups in one compile
        hidden = QFormer(CFGS.video_qformer).apply({"params": out["video_qformer"]}, feats)
        video = Projector(CFGS.video_proj).apply({"params": out["video_proj"]}, hidden)
        face = FacePooling(CFGS.face_pooling).apply({"params": out["face_pooling"]}, f)
        fusion = FusionEncoder(CFGS.fusion).apply({"params": out["fusion"]}, a3, v3)
        return video, face, fusion

    groups = {k: out[k] for k in ("video_qformer", "video_proj", "face_pooling", "fusion")}
    with jax.default_matmul_precision("highest"):
        video, face, fusion = run(groups, *(jnp.asarray(np.asarray(x)) for x in (feats, f, a3, v3)))
    for got, want in ((video, want_video), (face, want_face), (fusion, want_fusion)):
        assert float(np.max(np.abs(np.asarray(got) - want))) <= 1e-4


def test_half_groups_and_foreign_checkpoints_are_named(reference, tmp_path):
    path, t = reference
    sd = dict(t["sd"])
    del sd["video_frame_position_embedding.weight"]
    bad = tmp_path / "bad.pth"
    torch.save({"model": sd}, bad)
    with pytest.raises(ValueError, match="video_frame_position_embedding.weight"):
        convert_reference_checkpoint(str(bad), CFGS)
    other = tmp_path / "clip.pth"
    torch.save({"model": {"vision_model.encoder.layers.0.mlp.fc1.weight": torch.zeros(2, 2)}}, other)
    with pytest.raises(ValueError, match="unexpected tensor"):
        convert_reference_checkpoint(str(other), CFGS)
