"""Checkpoint reading shared by every converter: formats, unwrapping, and the errors that name tensors."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from emox_jax.convert import io


def test_torch_pickle_nested_and_bf16(tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save({"model": {"a.weight": torch.ones(2, 3), "b": {"c": torch.full((4,), 0.5, dtype=torch.bfloat16)}},
                "epoch": 3}, path)
    sd = io.load_state_dict(path)  # the single "model" dict is unwrapped automatically
    assert sorted(sd) == ["a.weight", "b.c"]
    assert sd["b.c"].dtype == np.float32 and np.all(sd["b.c"] == 0.5)


def test_explicit_unwrap_names_missing_key(tmp_path):
    path = tmp_path / "facex.pt"
    torch.save({"state_dict_backbone": {"x": torch.zeros(1)}}, path)
    assert list(io.load_state_dict(path, unwrap="state_dict_backbone")) == ["x"]
    with pytest.raises(io.CheckpointFormatError, match="expected top-level key 'model'"):
        io.load_state_dict(path, unwrap="model")


def test_sharded_safetensors_dir(tmp_path):
    save_file({"w1": np.ones((2, 2), np.float32)}, tmp_path / "model-00001-of-00002.safetensors")
    save_file({"w2": np.zeros((3,), np.float32)}, tmp_path / "model-00002-of-00002.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"w1": "model-00001-of-00002.safetensors", "w2": "model-00002-of-00002.safetensors"}}))
    sd = io.load_state_dict(tmp_path)
    assert sd["w1"].shape == (2, 2) and sd["w2"].shape == (3,)


def test_not_a_checkpoint_dir_lists_contents(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(io.CheckpointFormatError, match="notes.txt"):
        io.load_state_dict(tmp_path)
    with pytest.raises(io.CheckpointFormatError, match="does not exist"):
        io.load_state_dict(tmp_path / "nope.safetensors")


@dataclasses.dataclass
class Cfg:  # a non-tensor object, as the reference pickles its training config
    lr: float = 1e-4


def test_unsafe_pickle_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "ref.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "config": Cfg()}, path)
    with pytest.raises(io.CheckpointFormatError, match="trust_pickle"):
        io.load_state_dict(path)
    assert list(io.load_state_dict(path, trust_pickle=True)) == ["w"]


def test_take_and_check_all_used_name_the_tensor():
    sd = {"enc.w": np.zeros((3, 2)), "enc.b": np.zeros(2), "extra": np.zeros(1)}
    used: set[str] = set()
    with pytest.raises(io.TensorMismatchError, match=r"'enc.w' has shape \(3, 2\) but the model expects \(2, 3\)"):
        io.take(sd, "enc.w", (2, 3))
    with pytest.raises(io.TensorMismatchError, match=r"missing tensor 'enc.bias'.*enc.b"):
        io.take(sd, "enc.bias", (2,))
    io.take(sd, "enc.w", (3, 2), used=used)
    io.take(sd, "enc.b", (2,), used=used)
    with pytest.raises(io.TensorMismatchError, match="extra"):
        io.check_all_used(sd, used)
    io.check_all_used(sd, used, ignore_regexes=(r"^extra$",))


def test_stack_layers_transforms_each():
    sd = {f"l.{i}.w": np.full((2, 3), i, np.float32) for i in range(3)}
    out = io.stack_layers(sd, "l.{}.w", 3, (2, 3), transform=np.transpose)
    assert out.shape == (3, 3, 2) and np.all(out[2] == 2)
