"""Independent PyTorch reference of the foldmoe model (docs/model.md, docs/moe.md, docs/dense-parallel.md §7).

Written from the specifications only. Gradients come from torch autograd; every quantity the
spec marks as stop-gradient (top-k / group selection, expert bias, aux-map counts, capacity
choices) is computed on detached values. Default precision is float64 ("the truth").

Token order: activations are [S, B, H]; the MoE block flattens them to [N, H] with row
n = s*B + b (docs/moe.md §0), which fixes capacity tie-breaking, position-policy dropping and the
sequence membership used by seq_aux_loss.

Public pieces (used by the tests and by compare_dump.py):
  resolve_config(dict)         -> Cfg (defaults of src/config/config.h filled in)
  param_shapes(cfg)            -> {name: shape}
  init_params(cfg, seed)       -> {name: tensor}   (torch RNG; NOT the C++ Philox values)
  route(...), topk_mask(...), group_limit(...), capacity_keep(...), aux_* , zloss_sum(...)
  run_step(params, tokens, mask, cfg, ...) -> dict with objective (differentiable), lm_loss,
                                              logged aux values, logits of micro-batch 0
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------------------------
# Configuration (section/key names and defaults of src/config/config.h: the built-in tiny MoE)
# --------------------------------------------------------------------------------------------

DEFAULTS = {
    "model": dict(layers=2, hidden=96, heads=4, kv_heads=2, head_dim=0, ffn=192, vocab=0,
                  rope_theta=10000.0, norm_eps=1e-5, init_std=0.02, qk_norm="none",
                  attention_bias=False, tie_embeddings=False, rope_scaling="none",
                  rope_scaling_factor=1.0, rope_original_max_position=0, rope_low_freq_factor=1.0,
                  rope_high_freq_factor=4.0, rope_beta_fast=32.0, rope_beta_slow=1.0,
                  rope_attention_factor=None),
    "moe": dict(num_experts=8, topk=2, ffn_hidden_size=96, layer_freq=[1], score_function="softmax",
                pre_softmax=False, topk_scaling_factor=None, num_groups=None, group_topk=None,
                router_bias=False, enable_expert_bias=False, bias_update_rate=1e-3,
                input_jitter_eps=None, load_balancing_type=["aux_loss"], aux_loss_coeff=[0.01],
                z_loss_coeff=0.001, capacity_factor=None, drop_policy="probs",
                pad_to_capacity=False, capacity_partition=[], dispatcher="alltoall",
                shared_expert_ffn_hidden_size=0, shared_expert_gate=False),
    "train": dict(steps=300, micro_batch=16, micro_batches=1, seq_len=64, seed=1234,
                  per_token_loss=False, run_dir="runs/tiny-moe", precision="fp32"),
}


# Keys that accept "none" (unset), as in the TOML files.
OPTIONAL_KEYS = {"rope_attention_factor", "topk_scaling_factor", "num_groups", "group_topk", "input_jitter_eps", "z_loss_coeff",
                 "capacity_factor"}


class Section:
    def __init__(self, d):
        self.__dict__.update(d)

    def __repr__(self):
        return repr(self.__dict__)


class Cfg:
    """Resolved configuration: cfg.model.hidden, cfg.moe.topk, cfg.train.seq_len, ..."""

    def __init__(self, raw: dict):
        self.raw = raw
        for sec, defaults in DEFAULTS.items():
            d = copy.deepcopy(defaults)
            given = raw.get(sec, {}) or {}
            for key, val in given.items():
                d[key] = None if (val == "none" and key in OPTIONAL_KEYS) else val
            setattr(self, sec, Section(d))
        m, e = self.model, self.moe
        # optional values may be serialised as null; treat 'absent', null alike
        if isinstance(e.layer_freq, int):
            e.layer_freq = [e.layer_freq]
        if e.capacity_factor is not None and e.capacity_factor < 0:
            e.capacity_factor = None
        if e.load_balancing_type is None:
            e.load_balancing_type = []
        if isinstance(e.load_balancing_type, str):
            e.load_balancing_type = [e.load_balancing_type]
        if isinstance(e.aux_loss_coeff, (int, float)):
            e.aux_loss_coeff = [float(e.aux_loss_coeff)]
        if e.capacity_partition is None:
            e.capacity_partition = []
        assert len(e.load_balancing_type) == len(e.aux_loss_coeff), \
            "moe.load_balancing_type and moe.aux_loss_coeff differ in length (M8)"
        assert e.input_jitter_eps in (None, 0, 0.0), "input jitter is not modelled by the reference"

    # derived quantities
    @property
    def head_dim(self):
        return self.model.head_dim if self.model.head_dim > 0 else self.model.hidden // self.model.heads

    @property
    def moe_ffn(self):
        return self.moe.ffn_hidden_size if self.moe.ffn_hidden_size > 0 else self.model.ffn

    def is_moe_layer(self, i):
        if self.moe.num_experts <= 0:
            return False
        lf = self.moe.layer_freq
        if len(lf) == 1:
            return i % lf[0] == 0
        assert len(lf) == self.model.layers, "moe.layer_freq list must have model.layers entries"
        return bool(lf[i])

    def aux_coeffs(self) -> Dict[str, float]:
        return {t: float(c) for t, c in zip(self.moe.load_balancing_type, self.moe.aux_loss_coeff)
                if t != "none"}


def resolve_config(raw: dict) -> Cfg:
    return Cfg(raw)


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------

def param_shapes(cfg: Cfg) -> Dict[str, tuple]:
    m, e = cfg.model, cfg.moe
    H, V, L, D = m.hidden, m.vocab, m.layers, cfg.head_dim
    A, G = m.heads, m.kv_heads
    out = {"embedding.weight": (V, H)}
    for i in range(L):
        p = f"layers.{i}."
        out[p + "attn_norm.weight"] = (H,)
        out[p + "attn.wq"] = (A * D, H)
        out[p + "attn.wk"] = (G * D, H)
        out[p + "attn.wv"] = (G * D, H)
        out[p + "attn.wo"] = (H, A * D)
        if m.attention_bias:
            out[p + "attn.q_bias"] = (A * D,)
            out[p + "attn.k_bias"] = (G * D,)
            out[p + "attn.v_bias"] = (G * D,)
        if m.qk_norm == "head":
            out[p + "attn.q_norm"] = (D,)
            out[p + "attn.k_norm"] = (D,)
        elif m.qk_norm == "full":
            out[p + "attn.q_norm"] = (A * D,)
            out[p + "attn.k_norm"] = (G * D,)
        out[p + "mlp_norm.weight"] = (H,)
        if cfg.is_moe_layer(i):
            E, Fm = e.num_experts, cfg.moe_ffn
            out[p + "moe.router.weight"] = (E, H)
            if e.router_bias:
                out[p + "moe.router.bias"] = (E,)
            for x in range(E):
                out[p + f"moe.experts.{x}.fc1"] = (2 * Fm, H)
                out[p + f"moe.experts.{x}.fc2"] = (H, Fm)
            Fs = e.shared_expert_ffn_hidden_size
            if Fs > 0:
                out[p + "moe.shared.fc1"] = (2 * Fs, H)
                out[p + "moe.shared.fc2"] = (H, Fs)
                if e.shared_expert_gate:
                    out[p + "moe.shared_gate.weight"] = (1, H)
        else:
            out[p + "mlp.fc1"] = (2 * m.ffn, H)
            out[p + "mlp.fc2"] = (H, m.ffn)
    out["final_norm.weight"] = (H,)
    if not m.tie_embeddings:
        out["lm_head.weight"] = (V, H)
    return out


def init_params(cfg: Cfg, seed: int = 0, dtype=torch.float64) -> Dict[str, torch.Tensor]:
    """Same distributions as docs/model.md, from torch's RNG (values differ from the C++ Philox)."""
    g = torch.Generator().manual_seed(seed)
    std = cfg.model.init_std
    out_std = std / math.sqrt(2 * cfg.model.layers)
    params = {}
    for name, shape in param_shapes(cfg).items():
        if name.endswith(("norm.weight", "attn.q_norm", "attn.k_norm")):
            t = torch.ones(shape, dtype=dtype)
        elif name.endswith(("router.bias", "_bias")):
            t = torch.zeros(shape, dtype=dtype)
        elif name.endswith(("attn.wo", ".fc2")):
            t = torch.randn(shape, generator=g, dtype=dtype) * out_std
        else:
            t = torch.randn(shape, generator=g, dtype=dtype) * std
        params[name] = t
    return params


# --------------------------------------------------------------------------------------------
# Matrix products and train.precision (docs/precision.md): in "bf16" both operands of every
# matrix product, forward and backward, are rounded to bf16 (round to nearest even) and the
# products summed exactly here (float64). The router's products and the shared-expert gate stay
# unrounded. set_precision() switches the module; mm() is every rounded product.
# --------------------------------------------------------------------------------------------
BF16 = {"on": False}


def set_precision(name):
    assert name in ("fp32", "bf16"), f"train.precision {name!r}"
    BF16["on"] = name == "bf16"


def to_bf16(t):
    """t rounded to bf16 (through float32, the values foldmoe holds), back in t's dtype."""
    return t.to(torch.float32).to(torch.bfloat16).to(t.dtype)


class _Bf16MatMul(torch.autograd.Function):
    """y = r(a) @ r(b); da = r(dy) @ r(b)^T, db = r(a)^T @ r(dy): each backward product rounds its
    operands too, as the bf16 GEMMs of foldmoe's backward do."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return to_bf16(a) @ to_bf16(b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        g = to_bf16(g)
        return g @ to_bf16(b).transpose(-1, -2), to_bf16(a).transpose(-1, -2) @ g


def mm(a, b):
    return _Bf16MatMul.apply(a, b) if BF16["on"] else a @ b


class _Bf16Attention(torch.autograd.Function):
    """Causal attention of pre-scaled queries qs [B, A, S, D] with k, v [B, A, S, D] where the
    products are bf16 (docs/precision.md), at the points a flash-attention kernel rounds:
      forward   s = r(qs)·r(k)ᵀ; over key tiles of 64 (the online softmax), with m the running row
                maximum: e = exp(s_tile − m), acc = acc·exp(m_old − m) + r(e)·r(v_tile); o = acc / Σe
      backward  P = exp(s − lse), dv = r(P)ᵀ·r(do), dP = r(do)·r(v)ᵀ, dS = P ⊙ (dP − Σ(do ⊙ o)),
                dqs = r(dS)·r(k), dk = r(dS)ᵀ·r(qs).
    The tiles matter in bf16: e is rounded relative to the maximum seen so far, not the row's."""
    KEY_TILE = 64

    @staticmethod
    def forward(ctx, qs, k, v):
        S = qs.shape[-2]
        causal = torch.ones(S, S, dtype=torch.bool).tril()
        s = (to_bf16(qs) @ to_bf16(k).transpose(-1, -2)).masked_fill(~causal, float("-inf"))
        m = torch.full(s.shape[:-1] + (1,), float("-inf"), dtype=s.dtype)
        lsum = torch.zeros_like(m)
        acc = torch.zeros_like(qs)
        for j0 in range(0, S, _Bf16Attention.KEY_TILE):
            st = s[..., j0:j0 + _Bf16Attention.KEY_TILE]
            m_new = torch.maximum(m, st.amax(-1, keepdim=True))
            alpha = torch.exp(m - m_new)  # 0 on the first tile; rows that see no key of a tile keep 1
            e = torch.exp(st - m_new)
            lsum = lsum * alpha + e.sum(-1, keepdim=True)
            acc = acc * alpha + to_bf16(e) @ to_bf16(v[..., j0:j0 + _Bf16Attention.KEY_TILE, :])
            m = m_new
        o = acc / lsum
        ctx.save_for_backward(qs, k, v, o, s - m - torch.log(lsum))
        return o

    @staticmethod
    def backward(ctx, do):
        qs, k, v, o, log_p = ctx.saved_tensors
        P = torch.exp(log_p)
        dv = to_bf16(P).transpose(-1, -2) @ to_bf16(do)
        dP = to_bf16(do) @ to_bf16(v).transpose(-1, -2)
        dS = P * (dP - (do * o).sum(-1, keepdim=True))
        dqs = to_bf16(dS) @ to_bf16(k)
        dk = to_bf16(dS).transpose(-1, -2) @ to_bf16(qs)
        return dqs, dk, dv


# --------------------------------------------------------------------------------------------
# Dense pieces
# --------------------------------------------------------------------------------------------

def rmsnorm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def swiglu_mlp(x, fc1, fc2):
    """fc1 [2F, H] = [W_gate; W_up] (gate rows first); fc2 [H, F]."""
    Fd = fc2.shape[1]
    ab = mm(x, fc1.t())
    a, b = ab[..., :Fd], ab[..., Fd:]
    return mm(F.silu(a) * b, fc2.t())


def rope_inv_freq(D, m):
    """Inverse frequencies [D/2] and the cos/sin multiplier of RoPE with model.rope_scaling
    (the types of transformers' rope_scaling: linear, llama3, yarn), in float64."""
    theta = m.rope_theta
    base = theta ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    kind, s = m.rope_scaling, m.rope_scaling_factor
    if kind == "none":
        return base, 1.0
    if kind == "linear":
        return base / s, 1.0
    L0 = float(m.rope_original_max_position)
    if kind == "llama3":
        lo, hi = m.rope_low_freq_factor, m.rope_high_freq_factor
        wave = 2 * math.pi / base
        scaled = base / s                                   # long wavelengths: interpolate
        t = (L0 / wave - lo) / (hi - lo)                    # band between: blend
        blended = (1 - t) * base / s + t * base
        out = torch.where(wave < L0 / hi, base, torch.where(wave > L0 / lo, scaled, blended))
        return out, 1.0
    assert kind == "yarn", kind

    def dim_of(rotations):  # the dimension index that turns `rotations` times over L0 positions
        return D * math.log(L0 / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    lo = max(math.floor(dim_of(m.rope_beta_fast)), 0)
    hi = min(math.ceil(dim_of(m.rope_beta_slow)), D - 1)
    if lo == hi:
        hi += 0.001
    ramp = ((torch.arange(D // 2, dtype=torch.float64) - lo) / (hi - lo)).clamp(0, 1)
    inv = base / s * ramp + base * (1 - ramp)
    mult = m.rope_attention_factor
    if mult is None:
        mult = 1.0 if s <= 1 else 0.1 * math.log(s) + 1.0
    return inv, mult


def rope_cos_sin(S, D, m, dtype):
    inv_freq, mult = rope_inv_freq(D, m)
    ang = torch.arange(S, dtype=torch.float64)[:, None] * inv_freq[None, :]  # [S, D/2]
    ang = torch.cat([ang, ang], dim=-1)                                        # [S, D]
    return (ang.cos() * mult).to(dtype), (ang.sin() * mult).to(dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def attention(x, P, p, m, D):
    """x [S, B, H] -> [S, B, H]; GQA causal attention with HF rotate-half RoPE, the optional q/k/v
    biases and QK-norm (per head, or over the whole projection) before RoPE."""
    S, B, _ = x.shape
    A, G = m.heads, m.kv_heads
    q, k, v = (mm(x, P[p + n].t()) for n in ("attn.wq", "attn.wk", "attn.wv"))
    if m.attention_bias:
        q, k, v = q + P[p + "attn.q_bias"], k + P[p + "attn.k_bias"], v + P[p + "attn.v_bias"]
    if m.qk_norm == "full":
        q, k = rmsnorm(q, P[p + "attn.q_norm"], m.norm_eps), rmsnorm(k, P[p + "attn.k_norm"], m.norm_eps)
    q, k, v = q.view(S, B, A, D), k.view(S, B, G, D), v.view(S, B, G, D)
    if m.qk_norm == "head":
        q, k = rmsnorm(q, P[p + "attn.q_norm"], m.norm_eps), rmsnorm(k, P[p + "attn.k_norm"], m.norm_eps)
    cos, sin = rope_cos_sin(S, D, m, x.dtype)
    cos, sin = cos[:, None, None, :], sin[:, None, None, :]
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    kv_of_head = torch.tensor([(h * G) // A for h in range(A)])
    k = k[:, :, kv_of_head]  # [S, B, A, D]
    v = v[:, :, kv_of_head]
    q, k, v = (t.permute(1, 2, 0, 3) for t in (q, k, v))  # [B, A, S, D]
    if BF16["on"]:
        o = _Bf16Attention.apply(q / math.sqrt(D), k, v)  # foldmoe scales q before the product
    else:
        scores = q @ k.transpose(-1, -2) / math.sqrt(D)
        causal = torch.ones(S, S, dtype=torch.bool).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        o = torch.softmax(scores, dim=-1) @ v             # [B, A, S, D]
    o = o.permute(2, 0, 1, 3).reshape(S, B, A * D)
    return mm(o, P[p + "attn.wo"].t())


# --------------------------------------------------------------------------------------------
# Router (docs/moe.md §2)
# --------------------------------------------------------------------------------------------

# Diagnostics: smallest decision margins seen (top-k boundary, capacity boundary). A tiny margin
# means an fp32 implementation may legitimately decide differently from this float64 reference.
MARGINS = {"topk": math.inf, "capacity": math.inf}


def reset_margins():
    MARGINS["topk"] = math.inf
    MARGINS["capacity"] = math.inf


def topk_mask(z: torch.Tensor, k: int) -> torch.Tensor:
    """Bool [N, E]: the k largest entries per row, ties broken by lower index (no gradient)."""
    zn = z.detach().cpu().double().numpy()
    full = np.argsort(-zn, axis=-1, kind="stable")
    order = full[:, :k]
    if zn.shape[-1] > k and zn.shape[0] > 0:
        zs = np.take_along_axis(zn, full[:, k - 1:k + 1], axis=-1)
        fin = np.isfinite(zs).all(-1)
        if fin.any():
            MARGINS["topk"] = min(MARGINS["topk"], float((zs[fin, 0] - zs[fin, 1]).min()))
    m = np.zeros(zn.shape, dtype=bool)
    np.put_along_axis(m, order, True, axis=-1)
    return torch.from_numpy(m)


def group_limit(z: torch.Tensor, k: int, num_groups: int, group_topk: int) -> torch.Tensor:
    """docs/moe.md §2.4: experts outside the g best groups get -inf (no gradient; z is detached)."""
    N, E = z.shape
    Gr, g = num_groups, group_topk
    assert E % Gr == 0 and 1 <= g <= Gr and g <= k <= g * (E // Gr), "M3 group routing rule"
    zg = z.detach().double().view(N, Gr, E // Gr)
    per = k // g
    gs = torch.sort(zg, dim=-1, descending=True).values[..., :per].sum(-1)  # [N, Gr]
    keep_groups = topk_mask(gs, g)                                          # ties -> lower group
    keep = keep_groups[:, :, None].expand(N, Gr, E // Gr).reshape(N, E)
    return z.detach().masked_fill(~keep, float("-inf"))


def route(logits, k, score_function="softmax", pre_softmax=False, topk_scaling_factor=None,
          num_groups=None, group_topk=None, expert_bias=None):
    """docs/moe.md §2.3-2.4. Returns (probs [N, E] differentiable, zero off the map; map bool [N, E])."""
    if score_function == "softmax":
        assert expert_bias is None, "M4: expert bias requires sigmoid"
        if pre_softmax:
            sc = torch.softmax(logits, dim=-1)
            z = sc.detach()
        else:
            z = logits.detach()
    elif score_function == "sigmoid":
        sc = torch.sigmoid(logits)
        z = sc.detach()
        if expert_bias is not None:
            z = z + expert_bias.to(z.dtype)
    else:
        raise ValueError(f"score_function {score_function!r}")
    if num_groups is not None or group_topk is not None:
        z = group_limit(z, k, num_groups, group_topk)
    rmap = topk_mask(z, k)
    if score_function == "softmax" and not pre_softmax:
        masked = logits.masked_fill(~rmap, float("-inf"))
        probs = torch.softmax(masked, dim=-1)             # softmax over the k winners
        probs = torch.where(rmap, probs, torch.zeros_like(probs))
    elif score_function == "softmax":
        probs = torch.where(rmap, sc, torch.zeros_like(sc))
    else:
        sel = torch.where(rmap, sc, torch.zeros_like(sc))
        probs = sel / (sel.sum(-1, keepdim=True) + 1e-20) if k > 1 else sel
    if topk_scaling_factor is not None:
        probs = probs * topk_scaling_factor
    return probs, rmap


# --------------------------------------------------------------------------------------------
# Capacity (docs/moe.md §3)
# --------------------------------------------------------------------------------------------

def capacity(N: int, k: int, E: int, cf: float) -> int:
    C = math.ceil(((N * k) / E) * cf)  # IEEE double, in this order
    return min(C, N)


def capacity_units(S: int, B: int, partition) -> List[torch.Tensor]:
    """Rows of each capacity unit, in unit token order (docs/moe.md §3.5). No partition: one unit,
    all N rows ascending."""
    if not partition:
        return [torch.arange(S * B)]
    tp, cp = partition
    units = []
    if cp > 1:
        assert S % (2 * cp) == 0, "M11: S mod 2cp"
        ch = S // (2 * cp)
    for c in range(cp):
        if cp > 1:
            pos = list(range(c * ch, (c + 1) * ch)) + list(range((2 * cp - 1 - c) * ch, (2 * cp - c) * ch))
        else:
            pos = list(range(S))
        assert len(pos) % tp == 0, "M11: (S/cp) mod tp"
        piece = len(pos) // tp
        for t in range(tp):
            ps = pos[t * piece:(t + 1) * piece]
            units.append(torch.tensor([s * B + b for s in ps for b in range(B)]))
    return units


def capacity_keep(probs, rmap, k, cf, policy="probs", units=None):
    """keep [N, E] bool: per unit and expert the first C_eff tokens by the policy's key.
    Returns (keep, list of C_eff per unit)."""
    N, E = rmap.shape
    if units is None:
        units = [torch.arange(N)]
    pn = probs.detach().double().numpy()
    mn = rmap.numpy()
    keep = np.zeros((N, E), dtype=bool)
    ceffs = []
    for rows in units:
        rows = rows.numpy()
        n = len(rows)
        C = capacity(n, k, E, cf)
        ceffs.append(C)
        for e in range(E):
            if policy == "probs":
                key = -pn[rows, e]
            elif policy == "position":
                key = -mn[rows, e].astype(np.float64)
            else:
                raise ValueError(f"drop_policy {policy!r} (M7)")
            full = np.argsort(key, kind="stable")
            order = full[:C]  # ties -> earlier in unit order
            if policy == "probs" and 0 < C < n and mn[rows[full[C]], e]:
                MARGINS["capacity"] = min(MARGINS["capacity"], float(key[full[C]] - key[full[C - 1]]))
            keep[rows[order], e] = True
    return torch.from_numpy(keep), ceffs


# --------------------------------------------------------------------------------------------
# Aux losses and z-loss (docs/moe.md §4); all returned UNSCALED (alpha = 1)
# --------------------------------------------------------------------------------------------

def aux_scores(logits, score_function):
    if score_function == "softmax":
        return torch.softmax(logits, dim=-1)
    s = torch.sigmoid(logits)
    return s / (s.sum(-1, keepdim=True) + 1e-20)


def aux_lambda(a_rows, c, T, k, E):
    """Λ(a, c, T) with α = 1: E/(k·T²)·Σ_e (Σ_n a_ne)·c_e  (c detached)."""
    return E / (k * T * T) * (a_rows.sum(0) * c).sum()


def aux_counts(a, k, valid):
    amap = topk_mask(a, k) & valid[:, None]
    return amap.sum(0).to(a.dtype)


def zloss_sum(logits, valid):
    """Σ_valid lse² / n_valid (unscaled)."""
    n = int(valid.sum())
    if n == 0:
        return logits.sum() * 0
    lse = torch.logsumexp(logits, dim=-1)
    return (lse[valid] ** 2).sum() / n


# --------------------------------------------------------------------------------------------
# MoE block
# --------------------------------------------------------------------------------------------

class MoEState:
    """Per-step state across micro-batches: global-aux accumulators, expert-bias buffers,
    expert-bias counts, and capacity metrics."""

    def __init__(self):
        self.global_acc = {}
        self.global_steps = {}
        self.expert_bias = {}
        self.bias_counts = {}
        self.metrics = {}


def moe_block(x3, P, prefix, cfg: Cfg, state: MoEState, valid=None):
    """x3 [S, B, H] -> (y [S, B, H], dict of unscaled aux pieces, n_stat tokens).

    valid: optional bool [N] MoE padding mask (docs/moe.md §4.7); None = every token valid."""
    e = cfg.moe
    S, B, H = x3.shape
    N = S * B
    E, k = e.num_experts, e.topk
    x = x3.reshape(N, H)  # row n = s*B + b
    if valid is None:
        valid = torch.ones(N, dtype=torch.bool)
    W = P[prefix + "router.weight"]
    logits = x @ W.t()
    if e.router_bias:
        logits = logits + P[prefix + "router.bias"]
    bias = state.expert_bias.get(prefix) if e.enable_expert_bias else None
    if e.enable_expert_bias and bias is None:
        bias = torch.zeros(E, dtype=torch.float64)
    probs, rmap = route(logits, k, e.score_function, e.pre_softmax, e.topk_scaling_factor,
                        e.num_groups, e.group_topk, bias)
    if e.enable_expert_bias:  # demand counts before capacity, valid tokens only
        cnt = (rmap & valid[:, None]).sum(0)
        state.bias_counts[prefix] = state.bias_counts.get(prefix, 0) + cnt
    if e.capacity_factor is not None:
        units = capacity_units(S, B, e.capacity_partition)
        keep, ceffs = capacity_keep(probs, rmap, k, e.capacity_factor, e.drop_policy, units)
        final_map = rmap & keep
        # pad_to_capacity: fillers (keep & ~rmap) carry weight 0 -> no numerical effect
        state.metrics.setdefault(prefix, []).append(
            dict(routed=rmap.sum(0).tolist(), kept=final_map.sum(0).tolist(), c_eff=ceffs))
    else:
        final_map = rmap
    final_probs = torch.where(final_map, probs, torch.zeros_like(probs))

    # experts: y_n = Σ_{kept e} W2_e (silu(a) ⊙ b · p)
    y = torch.zeros_like(x)
    for ex in range(E):
        idx = torch.nonzero(final_map[:, ex], as_tuple=False).flatten()
        if idx.numel() == 0:
            continue
        xe = x.index_select(0, idx)
        fc1 = P[prefix + f"experts.{ex}.fc1"]
        fc2 = P[prefix + f"experts.{ex}.fc2"]
        Fm = fc2.shape[1]
        ab = mm(xe, fc1.t())
        h = F.silu(ab[:, :Fm]) * ab[:, Fm:]
        h = h * final_probs.index_select(0, idx)[:, ex:ex + 1]
        y = y.index_add(0, idx, mm(h, fc2.t()))

    if e.shared_expert_ffn_hidden_size > 0:
        sh = swiglu_mlp(x, P[prefix + "shared.fc1"], P[prefix + "shared.fc2"])
        if e.shared_expert_gate:
            sh = torch.sigmoid(x @ P[prefix + "shared_gate.weight"].t()) * sh
        y = y + sh

    # aux losses (unscaled); scores recomputed from logits, no bias/group/dropping (docs/moe.md §4.1)
    pieces = {}
    coeffs = cfg.aux_coeffs()
    nvalid = int(valid.sum())
    if coeffs:
        a = aux_scores(logits, e.score_function)
        a = torch.where(valid[:, None], a, torch.zeros_like(a))
        c = aux_counts(a, k, valid)
        if "aux_loss" in coeffs:
            pieces["aux_loss"] = aux_lambda(a, c, nvalid, k, E) if nvalid > 0 else logits.sum() * 0
        if "seq_aux_loss" in coeffs:
            terms = []
            for b in range(B):
                rows = torch.arange(b, N, B)  # sequence b: rows s*B + b
                vb = valid[rows]
                Tb = int(vb.sum())
                if Tb == 0:
                    continue
                ab_ = a[rows]
                cb = aux_counts(ab_, k, vb)
                terms.append(aux_lambda(ab_, cb, Tb, k, E))
            pieces["seq_aux_loss"] = torch.stack(terms).mean() if terms else logits.sum() * 0
        if "global_aux_loss" in coeffs:
            state.global_acc[prefix] = state.global_acc.get(prefix, 0) + c
            state.global_steps[prefix] = state.global_steps.get(prefix, 0) + 1
            cbar = state.global_acc[prefix] / state.global_steps[prefix]
            pieces["global_aux_loss"] = aux_lambda(a, cbar, nvalid, k, E) if nvalid > 0 else logits.sum() * 0
    if e.z_loss_coeff is not None:
        pieces["z_loss"] = zloss_sum(logits, valid)
    return y.view(S, B, H), pieces, nvalid


# --------------------------------------------------------------------------------------------
# Whole model and one training step's objective
# --------------------------------------------------------------------------------------------

def forward_microbatch(P, ids, cfg: Cfg, state: MoEState, moe_valid=None):
    """ids [B, S] -> (logits [S, B, V], list of (layer, pieces, n_stat) for MoE layers)."""
    m = cfg.model
    x = P["embedding.weight"][ids.t()]  # [S, B, H]
    moe_out = []
    for i in range(m.layers):
        p = f"layers.{i}."
        h = x + attention(rmsnorm(x, P[p + "attn_norm.weight"], m.norm_eps), P, p, m, cfg.head_dim)
        hn = rmsnorm(h, P[p + "mlp_norm.weight"], m.norm_eps)
        if cfg.is_moe_layer(i):
            y, pieces, nstat = moe_block(hn, P, p + "moe.", cfg, state, moe_valid)
            moe_out.append((i, pieces, nstat))
        else:
            y = swiglu_mlp(hn, P[p + "mlp.fc1"], P[p + "mlp.fc2"])
        x = h + y
    head = P["embedding.weight"] if m.tie_embeddings else P["lm_head.weight"]
    logits = mm(rmsnorm(x, P["final_norm.weight"], m.norm_eps), head.t())
    return logits, moe_out


def run_step(P, tokens, mask, cfg: Cfg, moe_mask_from_loss_mask=False, state=None):
    """tokens [M*B, S+1] int, mask [M*B, S] (1 = counted). Returns dict:
    objective (tensor with grad), lm_loss, aux logs (float, ÷ coefficient, mean over
    micro-batches and MoE layers), logits0 [B, S, V] (detached), state."""
    B, M, S = cfg.train.micro_batch, cfg.train.micro_batches, cfg.train.seq_len
    assert tokens.shape == (M * B, S + 1), f"batch/tokens shape {tuple(tokens.shape)} != {(M * B, S + 1)}"
    assert mask.shape == (M * B, S)
    per_token = bool(cfg.train.per_token_loss)
    coeffs = cfg.aux_coeffs()
    state = state or MoEState()
    n_glob = int(mask.sum())
    objective = 0.0
    lm_sum = 0.0
    logs = {t: [] for t in list(coeffs) + (["z_loss"] if cfg.moe.z_loss_coeff is not None else [])}
    logits0 = None
    for mb in range(M):
        tk = tokens[mb * B:(mb + 1) * B].long()
        mk = mask[mb * B:(mb + 1) * B].bool()
        inp, tgt = tk[:, :S], tk[:, 1:]
        moe_valid = mk.t().reshape(-1) if moe_mask_from_loss_mask else None  # row s*B+b
        logits, moe_out = forward_microbatch(P, inp, cfg, state, moe_valid)
        if mb == 0:
            logits0 = logits.detach().transpose(0, 1).contiguous()
        lp = torch.log_softmax(logits, dim=-1)                          # [S, B, V]
        ce = -lp.gather(-1, tgt.t().unsqueeze(-1)).squeeze(-1)          # [S, B]
        ce_sum = (ce * mk.t().to(ce.dtype)).sum()
        n_mb = int(mk.sum())
        aux_total = 0.0
        for (_, pieces, nstat) in moe_out:
            for t, v in pieces.items():
                alpha = cfg.moe.z_loss_coeff if t == "z_loss" else coeffs[t]
                w = 1.0
                if per_token:
                    w = float(nstat)  # κ = tokens covered by the statistic (σ = 1)
                aux_total = aux_total + alpha * w * v
                logs[t].append(float(v.detach()))
        if per_token:
            objective = objective + ce_sum + aux_total
        else:
            objective = objective + (ce_sum / max(n_mb, 1) + aux_total) / M
            lm_sum += float(ce_sum.detach()) / max(n_mb, 1)
        if per_token:
            lm_sum += float(ce_sum.detach())
    if per_token:
        objective = objective / max(n_glob, 1)
        lm_loss = lm_sum / max(n_glob, 1)
    else:
        lm_loss = lm_sum / M
    aux_logs = {t: (sum(v) / len(v) if v else 0.0) for t, v in logs.items()}
    return dict(objective=objective, lm_loss=lm_loss, aux=aux_logs, logits0=logits0, state=state)


def update_expert_bias(cfg: Cfg, state: MoEState):
    """docs/moe.md §2.7 finalize update (for tests): bias += u·sign(mean(c) - c)."""
    for prefix, c in state.bias_counts.items():
        c = c.double()
        b = state.expert_bias.get(prefix, torch.zeros_like(c))
        state.expert_bias[prefix] = b + cfg.moe.bias_update_rate * torch.sign(c.mean() - c)
    state.bias_counts = {}


def flops_per_token(cfg: Cfg, make_vocab_divisible_by=128, tp=1):
    """docs/dense-parallel.md §11 model FLOPs per token (per iteration / (GBS·s))."""
    m = cfg.model
    L, h, s, A, G, d = m.layers, m.hidden, cfg.train.seq_len, m.heads, m.kv_heads, cfg.head_dim
    Lm = sum(1 for i in range(L) if cfg.is_moe_layer(i))
    Ld = L - Lm
    mult = 1.5
    Fsh = cfg.moe.shared_expert_ffn_hidden_size if cfg.moe.num_experts > 0 else 0
    k = cfg.moe.topk if cfg.moe.num_experts > 0 else 0
    q = make_vocab_divisible_by * tp
    Vp = -(-m.vocab // q) * q
    mlp = 12 * L * h * (m.ffn * mult * Ld / L + cfg.moe_ffn * k * mult * Lm / L + Fsh * mult * Lm / L)
    att = 12 * L * h * h * (1 + G / A + s / (2 * h)) * (d * A / h)
    return mlp + att + 6 * h * Vp
