"""Nano-EmoX model presets: ``nano_emox`` (the real 2.2B shapes, spec §1/§6) and ``tiny`` (CPU tests, quickstart).

``--config=configs/nano_emox.py:tiny`` gives just the ``model`` section (what ``configs/p2e.py`` embeds);
``preset(name)`` returns the frozen ``NanoEmoXConfig``; ``build(section)`` validates an (overridden) section.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from configs import common
from emox_jax.config_utils import ConfigError, from_config
from emox_jax.models.clip_vit import ClipVisionConfig
from emox_jax.models.face_encoder import FaceEncoderConfig, FacePoolingConfig
from emox_jax.models.fusion import FusionConfig
from emox_jax.models.hubert import HubertConfig
from emox_jax.models.nano_emox import NanoEmoXConfig
from emox_jax.models.projectors import ProjectorConfig
from emox_jax.models.qformer import QFormerConfig
from emox_jax.models.qwen2 import Qwen2Config
from emox_jax.models.swin import SwinConfig

PRESETS = ("nano_emox", "tiny")


def nano_emox() -> NanoEmoXConfig:
    """Qwen2.5-1.5B + LoRA r16/α32/dropout 0.05, CLIP ViT-L/14, chinese-hubert-large, Swin-B FaceXFormer,
    2-layer Q-Formers with 32 queries, 4-query facial pooling, multiscale fusion (spec §2)."""
    cfg = NanoEmoXConfig(
        llm=Qwen2Config.qwen2_5_1_5b(lora_rank=16, lora_alpha=32.0, lora_dropout=0.05),
        clip=ClipVisionConfig.vit_l14(), hubert=HubertConfig.large(), face=FaceEncoderConfig.facexformer(),
        face_pooling=FacePoolingConfig.reference(), video_qformer=QFormerConfig.video(),
        audio_qformer=QFormerConfig.audio(), video_proj=ProjectorConfig.video(), audio_proj=ProjectorConfig.audio(),
        fusion=FusionConfig.multiscale(), frame_tokens=32, audio_tokens=32, face_tokens=4, multi_tokens=1)
    cfg.validate()
    return cfg


def tiny() -> NanoEmoXConfig:
    """A ~1.5M-param model on 32x32 frames and short audio clips: a 128-wide 4-layer Qwen2 (vocab 1024, LoRA r4),
    4-block 64-wide CLIP and HuBERT, a 3-stage 16-wide Swin, 8 frame / 8 audio / 4 face / 1 fusion tokens."""
    d = 128
    cfg = NanoEmoXConfig(
        # A narrower LM than Qwen2Config.tiny (256 wide): ~4x cheaper per token, still learns the answer templates.
        llm=Qwen2Config.tiny(hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2, head_dim=32,
                             intermediate_size=384, lora_rank=4, lora_alpha=8.0, lora_dropout=0.0),
        # Shapes pinned here (not inherited from the encoders' own tiny presets, which tests may retune).
        clip=ClipVisionConfig.tiny(image_size=32, patch_size=8, hidden_size=64, num_layers=4, num_heads=4,
                                   mlp_dim=128, frame_layer=3, multiscale_layers=(1, 2, 3)),
        hubert=HubertConfig.tiny(conv_dim=(32, 32, 32), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
                                 hidden_size=64, num_layers=4, num_heads=4, mlp_dim=128, pos_conv_kernel=16,
                                 pos_conv_groups=4, min_samples=1600, main_layers=(1, 2, 3, 4),
                                 multiscale_layers=(1, 2, 3)),
        face=FaceEncoderConfig(swin=SwinConfig.tiny(image_size=32, patch_size=4, embed_dim=16, depths=(2, 2),
                                                    num_heads=(2, 4), window_size=4, drop_path_rate=0.1),
                               head_dim=16),
        face_pooling=FacePoolingConfig.tiny(dim=16, proj=ProjectorConfig(in_dim=16, hidden_dim=32, out_dim=d)),
        video_qformer=QFormerConfig.tiny(num_queries=8, hidden_size=32, encoder_width=64, num_positions=8),
        audio_qformer=QFormerConfig.tiny(num_queries=8, hidden_size=32, encoder_width=64, num_positions=8),
        video_proj=ProjectorConfig(in_dim=32, out_dim=d), audio_proj=ProjectorConfig(in_dim=32, out_dim=d),
        fusion=FusionConfig.tiny(audio_dim=64, visual_dim=64, hidden_dim=32, num_heads=4, out_dim=d),
        frame_tokens=8, audio_tokens=8, face_tokens=4, multi_tokens=1)
    cfg.validate()
    return cfg


def preset(name: str) -> NanoEmoXConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; valid: {PRESETS}")
    return nano_emox() if name == "nano_emox" else tiny()


def model_section(name: str) -> ml_collections.ConfigDict:
    """The preset as a nested ConfigDict (every field overridable: ``--config.model.llm.lora_rank=8``)."""
    def section(obj):
        out = ml_collections.ConfigDict()
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if dataclasses.is_dataclass(v):
                setattr(out, f.name, section(v))
            elif v is None:
                setattr(out, f.name, ml_collections.config_dict.placeholder(str))
            else:
                setattr(out, f.name, v)
        return out

    return section(preset(name))


def build(section) -> NanoEmoXConfig:
    """A validated NanoEmoXConfig from a ``model`` section (errors name the key, e.g. ``model.llm.num_heads``)."""
    return from_config(NanoEmoXConfig, section, where="model")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    words = common.parse_arg(arg, {"preset": PRESETS}, {"preset": "tiny"})
    return common.lock(model_section(words["preset"]))
