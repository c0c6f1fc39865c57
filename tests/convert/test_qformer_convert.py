"""Q-Former import: LAVIS/reference names == transformers names, BERT init, refused layouts, the CLI."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from emox_jax.convert.io import CheckpointFormatError
from emox_jax.convert.qformer import convert_cli, init_from_bert, qformer_params_from_state_dict
from emox_jax.models.qformer import QFormerConfig
from tests.models.test_qformer import hf_qformer, quick_compiles


def to_lavis(sd: dict, prefix: str) -> dict:
    """transformers Blip2QFormerModel names -> the reference's BertLMHeadModel names (text FFN dropped)."""
    out = {}
    for k, v in sd.items():
        if ".intermediate." in k or ".output." in k and "_query" not in k and "attention" not in k:
            continue
        k = k.replace("layernorm.", "embeddings.LayerNorm.").replace("attention.attention.", "attention.self.")
        k = k.replace("crossattention.attention.", "crossattention.self.")
        out[prefix + "bert." + k] = v
    return out


def test_lavis_names_equal_hf_names():
    cfg = QFormerConfig.tiny(num_positions=0)
    sd = {k: v.detach().numpy() for k, v in hf_qformer(cfg).state_dict().items()}
    a = qformer_params_from_state_dict(sd, cfg, scheme="hf_blip2")
    b = qformer_params_from_state_dict(to_lavis(sd, "video_Qformer."), cfg, prefix="video_Qformer.", scheme="lavis")
    for (ka, va), (kb, vb) in zip(sorted(_flat(a).items()), sorted(_flat(b).items())):
        assert ka == kb
        np.testing.assert_array_equal(va, vb)


def _flat(t, p=""):
    out = {}
    for k, v in t.items():
        out.update(_flat(v, p + k + "/") if isinstance(v, dict) else {p + k: v})
    return out


def test_bert_init_copies_mappable_parts_and_keeps_new_ones():
    from transformers import BertConfig, BertModel

    cfg = QFormerConfig.tiny(num_positions=4)
    bert = BertModel(BertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                                vocab_size=20), add_pooling_layer=False)
    bsd = {"bert." + k: v.detach().numpy() for k, v in bert.state_dict().items()}
    base = qformer_params_from_state_dict(
        {k: v.detach().numpy() for k, v in hf_qformer(cfg).state_dict().items()}, cfg, scheme="hf_blip2")
    base["query_tokens"] = np.ones((cfg.num_queries, cfg.hidden_size), np.float32)
    new, new_parts = init_from_bert(base, bsd, cfg)
    np.testing.assert_array_equal(new["layers"]["ffn_in"]["kernel"][1], bsd["bert.encoder.layer.1.intermediate.dense.weight"].T)
    np.testing.assert_array_equal(new["emb_norm"]["scale"], bsd["bert.embeddings.LayerNorm.weight"])
    assert new["layers"]["cross_attn"] is base["layers"]["cross_attn"] and new["query_tokens"] is base["query_tokens"]
    assert "layers/cross_attn" in new_parts
    with pytest.raises(CheckpointFormatError, match="hidden size 32 != Q-Former hidden 48"):
        init_from_bert(base, bsd, QFormerConfig.tiny(hidden_size=48))


def test_sparse_cross_attention_and_wrong_depth_are_refused():
    from transformers import Blip2QFormerConfig, Blip2QFormerModel

    cfg = QFormerConfig.tiny(num_positions=0)
    m = Blip2QFormerModel(Blip2QFormerConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                             intermediate_size=64, encoder_hidden_size=24, cross_attention_frequency=2,
                                             vocab_size=10))
    sd = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    with pytest.raises(CheckpointFormatError, match=r"layers \[1\] have no cross-attention"):
        qformer_params_from_state_dict(sd, cfg, scheme="hf_blip2")
    with pytest.raises(CheckpointFormatError, match="has 2 Q-Former layers .* expects 3"):
        qformer_params_from_state_dict(sd, QFormerConfig.tiny(num_layers=3), scheme="hf_blip2")


def test_convert_cli_writes_orbax(tmp_path):
    import orbax.checkpoint as ocp

    cfg = QFormerConfig.tiny(num_positions=0)
    hf_qformer(cfg).save_pretrained(tmp_path / "hf")
    res = convert_cli(argparse.Namespace(hf_dir=str(tmp_path / "hf"), output=str(tmp_path / "out"), checkpoint=None))
    assert res["kind"] == "qformer"
    back = ocp.StandardCheckpointer().restore((tmp_path / "out").absolute())
    assert back["params"]["layers"]["cross_attn"]["key"]["kernel"].shape == (2, 24, 4, 8)


@pytest.mark.slow
def test_check_parity_kind_qformer(capsys):
    from launch.check_parity import main

    with quick_compiles():
        assert main(["--kind", "qformer", "--seq-len", "8"]) == 0
    assert '"kind": "qformer"' in capsys.readouterr().out
