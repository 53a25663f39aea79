"""Tiny random Hugging Face models of every architecture foldmoe maps, made by transformers itself
(AutoConfig.for_model + AutoModelForCausalLM.from_config + save_pretrained), and readers of HF
directories through the safetensors library: the independent references of the HF tests."""
import json
import os

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

COMMON = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              intermediate_size=48, vocab_size=160, max_position_embeddings=256, rms_norm_eps=1e-6)
ARCHS = {
    "llama": {},
    "qwen2": {},
    "qwen3": dict(head_dim=8),
    "mixtral": dict(num_local_experts=4, num_experts_per_tok=2),
    "qwen2_moe": dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=24,
                      shared_expert_intermediate_size=40, norm_topk_prob=False),
    "qwen3_moe": dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=24, head_dim=16,
                      norm_topk_prob=True, mlp_only_layers=[1]),
    "olmoe": dict(num_experts=4, num_experts_per_tok=2, norm_topk_prob=False),
}


def make_model(model_type, out_dir, dtype=torch.float32, seed=0, max_shard_size=None, **overrides):
    """Saves a random `model_type` model to out_dir (safetensors); returns out_dir."""
    torch.manual_seed(seed)
    kw = dict(COMMON, **ARCHS[model_type], **overrides)
    config = AutoConfig.for_model(model_type, **kw)
    model = AutoModelForCausalLM.from_config(config, torch_dtype=dtype)
    # Norm weights start at one: make them random too so that a swapped name cannot pass.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(torch.rand_like(p) + 0.5)
    kwargs = {"safe_serialization": True}
    if max_shard_size:
        kwargs["max_shard_size"] = max_shard_size
    model.save_pretrained(out_dir, **kwargs)
    return out_dir


def load_tensors(hf_dir):
    """Every tensor of an HF directory (one file or an index of shards), by name."""
    index = os.path.join(hf_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for f in files:
        out.update(load_file(os.path.join(hf_dir, f)))
    return out


def assert_same_tensors(a_dir, b_dir):
    a, b = load_tensors(a_dir), load_tensors(b_dir)
    assert sorted(a) == sorted(b), f"tensor names differ: only in {a_dir}: {sorted(set(a) - set(b))}, only in {b_dir}: {sorted(set(b) - set(a))}"
    for name in a:
        assert a[name].dtype == b[name].dtype, f"{name}: dtype {a[name].dtype} vs {b[name].dtype}"
        assert a[name].shape == b[name].shape, f"{name}: shape {a[name].shape} vs {b[name].shape}"
        assert torch.equal(bits(a[name]), bits(b[name])), f"{name} differs"


def bits(t):
    """The raw bits of a float tensor, so that equality is bit-exactness."""
    return t.contiguous().view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])
