"""Self-test of the PyTorch reference's architecture options against HF transformers' own modules
(docs/model.md "Architecture options"): RoPE scaling (linear, llama3, yarn) against
transformers' ROPE_INIT_FUNCTIONS, and the attention block (biases, QK-norm per head or over the
whole projection, scaled RoPE, head_dim != hidden / heads) against Qwen2-MoE's, Qwen3-MoE's and
OLMoE's attention modules with the same random weights. (foldmoe's attention_bias is Qwen2's:
q, k and v only; Llama, Qwen3 and OLMoE configs with attention_bias = true also bias o_proj and
are refused by the HF import.)

Run: .venv/bin/python tests/reference/test_ref_vs_transformers.py
"""
import os
import sys
import traceback

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import foldmoe_ref as R  # noqa: E402

try:
    from transformers import Qwen2MoeConfig, Qwen3MoeConfig, OlmoeConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.olmoe.modeling_olmoe import OlmoeAttention, OlmoeRotaryEmbedding
    from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeAttention, Qwen2MoeRotaryEmbedding
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeAttention, Qwen3MoeRotaryEmbedding
except ImportError as e:  # a missing dependency fails loudly
    print(f"FAIL: transformers is required (pinned in scripts/requirements-test.txt): {e}")
    print("0 passed, 1 failed")
    sys.exit(1)

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def model_section(**model):
    return R.Cfg({"model": model}).model


def max_positions(m, default):
    """transformers' max_position_embeddings: for yarn the extended context (its consistency check)."""
    return int(m.rope_original_max_position * m.rope_scaling_factor) if m.rope_scaling == "yarn" else default


def hf_rope_scaling(m):
    """transformers' rope_scaling dictionary of a foldmoe [model] section."""
    if m.rope_scaling == "none":
        return None
    d = {"rope_type": m.rope_scaling, "factor": m.rope_scaling_factor}
    if m.rope_scaling in ("llama3", "yarn"):
        d["original_max_position_embeddings"] = m.rope_original_max_position
    if m.rope_scaling == "llama3":
        d.update(low_freq_factor=m.rope_low_freq_factor, high_freq_factor=m.rope_high_freq_factor)
    if m.rope_scaling == "yarn":
        d.update(beta_fast=m.rope_beta_fast, beta_slow=m.rope_beta_slow)
        if m.rope_attention_factor is not None:
            d["attention_factor"] = m.rope_attention_factor
    return d


ROPE_CASES = [
    dict(rope_scaling="linear", rope_scaling_factor=2.5),
    dict(rope_scaling="llama3", rope_scaling_factor=8.0, rope_original_max_position=64, rope_theta=500000.0),
    dict(rope_scaling="llama3", rope_scaling_factor=4.0, rope_original_max_position=16,
         rope_low_freq_factor=1.0, rope_high_freq_factor=4.0),
    dict(rope_scaling="yarn", rope_scaling_factor=4.0, rope_original_max_position=32, rope_theta=500.0,
         rope_beta_fast=8.0),
    dict(rope_scaling="yarn", rope_scaling_factor=40.0, rope_original_max_position=4096, rope_theta=10000.0),
    dict(rope_scaling="yarn", rope_scaling_factor=2.0, rope_original_max_position=64, rope_attention_factor=1.3),
]


@test
def rope_inverse_frequencies_equal_transformers():
    for case in ROPE_CASES:
        for D in (16, 64, 128):
            m = model_section(hidden=D * 4, heads=4, head_dim=D, **case)
            cfg = Qwen3MoeConfig(hidden_size=D * 4, num_attention_heads=4, head_dim=D, rope_theta=m.rope_theta,
                                 rope_scaling=hf_rope_scaling(m), max_position_embeddings=max_positions(m, 4096))
            hf_inv, hf_factor = ROPE_INIT_FUNCTIONS[m.rope_scaling](cfg, "cpu")
            inv, factor = R.rope_inv_freq(D, m)
            rel = float(((inv - hf_inv.double()).abs() / hf_inv.double().abs()).max())
            assert rel < 1e-6, f"{case} D={D}: inverse frequencies differ, rel {rel:.3e}"
            assert abs(factor - hf_factor) < 1e-12, f"{case} D={D}: attention factor {factor} vs {hf_factor}"


def compare_attention(name, hf_config_cls, hf_attention_cls, hf_rotary_cls, model, hf_extra):
    torch.manual_seed(0)
    m = model_section(**model)
    H, A, G = m.hidden, m.heads, m.kv_heads
    D = m.head_dim if m.head_dim > 0 else H // A
    S, B = 24, 2
    cfg = hf_config_cls(hidden_size=H, num_attention_heads=A, num_key_value_heads=G, head_dim=D,
                        rope_theta=m.rope_theta, rope_scaling=hf_rope_scaling(m), rms_norm_eps=m.norm_eps,
                        max_position_embeddings=max_positions(m, 4 * S), attn_implementation="eager", **hf_extra)
    attn = hf_attention_cls(cfg, layer_idx=0).double()
    # Random values for every tensor, norm weights and biases included (their defaults 1 and 0
    # would hide a missing multiplication or addition).
    with torch.no_grad():
        for t in attn.parameters():
            t.copy_(torch.randn_like(t) * (0.3 if t.dim() == 2 else 0.5))
        for norm in ("q_norm", "k_norm"):
            if hasattr(attn, norm):
                getattr(attn, norm).weight.add_(1.0)
    p = "layers.0."
    P = {p + "attn.wq": attn.q_proj.weight, p + "attn.wk": attn.k_proj.weight, p + "attn.wv": attn.v_proj.weight,
         p + "attn.wo": attn.o_proj.weight}
    if m.attention_bias:
        P.update({p + "attn.q_bias": attn.q_proj.bias, p + "attn.k_bias": attn.k_proj.bias,
                  p + "attn.v_bias": attn.v_proj.bias})
    if m.qk_norm != "none":
        P.update({p + "attn.q_norm": attn.q_norm.weight, p + "attn.k_norm": attn.k_norm.weight})
    x = torch.randn(B, S, H, dtype=torch.float64)
    pos = torch.arange(S)[None, :].expand(B, S)
    cos, sin = hf_rotary_cls(cfg)(x, pos)
    mask = torch.full((S, S), float("-inf"), dtype=torch.float64).triu(1)[None, None].expand(B, 1, S, S)
    with torch.no_grad():
        hf = attn(hidden_states=x, attention_mask=mask, position_embeddings=(cos, sin))[0]  # [B, S, H]
        ref = R.attention(x.transpose(0, 1), P, p, m, D).transpose(0, 1)
    rel = float((hf - ref).abs().max() / hf.abs().max())
    # transformers builds cos/sin in float32 (its rotary embedding's buffer), the reference in float64.
    assert rel < 2e-6, f"{name}: attention differs from transformers, rel {rel:.3e}"


@test
def qwen2_moe_attention_with_biases_and_linear_rope():
    compare_attention("qwen2_moe", Qwen2MoeConfig, Qwen2MoeAttention, Qwen2MoeRotaryEmbedding,
                      dict(hidden=48, heads=4, kv_heads=2, attention_bias=True, rope_scaling="linear",
                           rope_scaling_factor=2.0), {})


@test
def qwen3_moe_attention_with_head_norm_and_llama3_rope():
    compare_attention("qwen3_moe", Qwen3MoeConfig, Qwen3MoeAttention, Qwen3MoeRotaryEmbedding,
                      dict(hidden=48, heads=4, kv_heads=2, head_dim=16, qk_norm="head", norm_eps=1e-6,
                           rope_scaling="llama3", rope_scaling_factor=4.0, rope_original_max_position=16),
                      dict(attention_bias=False))


@test
def olmoe_attention_with_full_norm_and_yarn_rope():
    compare_attention("olmoe", OlmoeConfig, OlmoeAttention, OlmoeRotaryEmbedding,
                      dict(hidden=48, heads=4, kv_heads=2, qk_norm="full", rope_theta=500.0, rope_scaling="yarn",
                           rope_scaling_factor=4.0, rope_original_max_position=32, rope_beta_fast=8.0),
                      dict(clip_qkv=None))


def main():
    passed = failed = 0
    for fn in TESTS:
        try:
            fn()
            passed += 1
            print(f"ok   {fn.__name__}")
        except Exception:  # noqa: BLE001 - report every failure, then the summary
            failed += 1
            print(f"FAIL {fn.__name__}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
