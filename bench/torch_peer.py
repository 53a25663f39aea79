"""PyTorch-eager benchmark peer of `foldmoe bench` (float32, one thread).

  OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 bench/torch_peer.py \
      --config configs/bench-small.toml [--warmup 2] [--steps 5] [--threads 1]

Same model as docs/model.md (pre-norm decoder, GQA attention with rotate-half RoPE, MoE with
top-k-on-logits routing + softmax over the winners, aux loss, untied lm_head), written the way a
PyTorch user would: nn.Linear modules, baddbmm attention (scale and additive causal mask fused,
as Megatron's unfused path; torch 1.13 has no fused SDPA) + softmax + bmm, HF-Mixtral / Megatron-SequentialMLP per-expert index loops, AdamW (decay on
matrices only) and gradient clipping. Random token batches; warm-up steps, then timed steps (step_ms = median step time).
Prints ONE JSON line on stdout:
  {"impl": "pytorch-eager", "tokens_per_s": ..., "step_ms": ..., "flops_per_token": ..., "threads": 1}
"""
import argparse
import os
import json
import math
import sys
import time

try:
    import tomllib
except ImportError:  # Python < 3.11: flat `[section] key = value` subset
    tomllib = None

import torch
import torch.nn as nn
import torch.nn.functional as F


def load_toml(path):
    if tomllib is not None:
        with open(path, "rb") as f:
            return tomllib.load(f)
    out = {}
    cur = out
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            cur = out.setdefault(line.strip("[]").strip(), {})
            continue
        k, v = (s.strip() for s in line.split("=", 1))
        v = v.replace("true", "True").replace("false", "False")
        cur[k] = eval(v, {}, {})  # numbers, strings, lists, booleans only
    return out


class Cfg:
    def __init__(self, t):
        m, e, tr, o = t.get("model", {}), t.get("moe", {}), t.get("train", {}), t.get("optim", {})
        self.layers = m.get("layers", 2)
        self.hidden = m.get("hidden", 64)
        self.heads = m.get("heads", 4)
        self.kv_heads = m.get("kv_heads", 2)
        self.head_dim = m.get("head_dim", 0) or self.hidden // self.heads
        self.ffn = m.get("ffn", 128)
        self.vocab = m["vocab"]
        self.rope_theta = m.get("rope_theta", 10000.0)
        self.norm_eps = m.get("norm_eps", 1e-5)
        self.init_std = m.get("init_std", 0.02)
        self.num_experts = e.get("num_experts", 0)
        self.topk = e.get("topk", 2)
        self.moe_ffn = e.get("ffn_hidden_size", 0) or self.ffn
        lf = e.get("layer_freq", [1])
        lf = [lf] if isinstance(lf, int) else lf
        self.moe_layers = [self.num_experts > 0 and ((i % lf[0] == 0) if len(lf) == 1 else bool(lf[i]))
                           for i in range(self.layers)]
        assert e.get("score_function", "softmax") == "softmax" and not e.get("pre_softmax", False), \
            "torch peer implements the default routing only"
        assert e.get("capacity_factor") is None or e.get("capacity_factor") < 0, "peer is dropless"
        assert not e.get("shared_expert_ffn_hidden_size", 0), "peer has no shared expert"
        types = e.get("load_balancing_type", ["aux_loss"])
        coeffs = e.get("aux_loss_coeff", [0.0])
        self.aux_coeff = dict(zip(types, coeffs)).get("aux_loss", 0.0)
        assert set(types) <= {"aux_loss", "none"}, "peer implements aux_loss only"
        self.z_coeff = e.get("z_loss_coeff")
        self.seq_len = tr.get("seq_len", 64)
        self.micro_batch = tr.get("micro_batch", 8)
        self.micro_batches = tr.get("micro_batches", 1)
        self.seed = tr.get("seed", 1234)
        self.lr = o.get("lr", 3e-3)
        self.weight_decay = o.get("weight_decay", 0.1)
        self.betas = (o.get("beta1", 0.9), o.get("beta2", 0.95))
        self.eps = o.get("eps", 1e-8)
        self.grad_clip = o.get("grad_clip", 1.0)

    def flops_per_token(self, divisible_by=128, tp=1):
        """docs/dense-parallel.md §11 (Megatron core_v0.12.0 accounting), per token."""
        L, h, s = self.layers, self.hidden, self.seq_len
        Lm = sum(self.moe_layers)
        Ld = L - Lm
        q = divisible_by * tp
        Vp = -(-self.vocab // q) * q
        m = 1.5
        mlp = 12 * L * h * (self.ffn * m * Ld / L + self.moe_ffn * self.topk * m * Lm / L)
        att = 12 * L * h * h * (1 + self.kv_heads / self.heads + s / (2 * h)) * (self.head_dim * self.heads / h)
        return mlp + att + 6 * h * Vp


class RMSNorm(nn.Module):
    def __init__(self, h, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(h))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.A, self.G, self.D = c.heads, c.kv_heads, c.head_dim
        self.wq = nn.Linear(c.hidden, self.A * self.D, bias=False)
        self.wk = nn.Linear(c.hidden, self.G * self.D, bias=False)
        self.wv = nn.Linear(c.hidden, self.G * self.D, bias=False)
        self.wo = nn.Linear(self.A * self.D, c.hidden, bias=False)

    def forward(self, x, cos, sin, causal_mask):
        B, S, _ = x.shape
        q = self.wq(x).view(B, S, self.A, self.D).transpose(1, 2)   # [B, A, S, D]
        k = self.wk(x).view(B, S, self.G, self.D).transpose(1, 2)   # [B, G, S, D]
        v = self.wv(x).view(B, S, self.G, self.D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.A // self.G                                       # HF repeat_kv
        k = k[:, :, None].expand(B, self.G, rep, S, self.D).reshape(B, self.A, S, self.D)
        v = v[:, :, None].expand(B, self.G, rep, S, self.D).reshape(B, self.A, S, self.D)
        # Megatron-style: scale and additive causal mask fused into one baddbmm
        scores = torch.baddbmm(causal_mask, q.reshape(B * self.A, S, self.D),
                               k.reshape(B * self.A, S, self.D).transpose(1, 2),
                               beta=1.0, alpha=1.0 / math.sqrt(self.D))
        probs = torch.softmax(scores, dim=-1)
        o = torch.bmm(probs, v.reshape(B * self.A, S, self.D)).view(B, self.A, S, self.D)
        return self.wo(o.transpose(1, 2).reshape(B, S, self.A * self.D))


class SwiGLU(nn.Module):
    def __init__(self, h, f):
        super().__init__()
        self.fc1 = nn.Linear(h, 2 * f, bias=False)  # [W_gate; W_up]
        self.fc2 = nn.Linear(f, h, bias=False)

    def forward(self, x):
        a, b = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(F.silu(a) * b)


class MoE(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.E, self.k = c.num_experts, c.topk
        self.router = nn.Linear(c.hidden, self.E, bias=False)
        self.experts = nn.ModuleList(SwiGLU(c.hidden, c.moe_ffn) for _ in range(self.E))
        self.aux_coeff = c.aux_coeff

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        N = x.shape[0]
        logits = self.router(x)                                      # fp32
        top_val, top_idx = torch.topk(logits, self.k, dim=-1)
        weights = torch.softmax(top_val, dim=-1)                     # softmax over the k winners
        out = torch.zeros_like(x)
        expert_mask = F.one_hot(top_idx, self.E).permute(2, 1, 0)   # [E, k, N]
        for e in range(self.E):                                      # HF Mixtral loop
            slot, tok = torch.where(expert_mask[e])
            if tok.numel() == 0:
                continue
            y = self.experts[e](x.index_select(0, tok)) * weights[tok, slot, None]
            out.index_add_(0, tok, y.to(out.dtype))  # autocast: bf16 expert output into the fp32 sum
        aux = x.new_zeros(())
        if self.aux_coeff:
            probs = torch.softmax(logits, dim=-1)
            counts = expert_mask.sum(dim=(1, 2)).to(probs.dtype)    # tokens per expert (no grad)
            aux = self.aux_coeff * self.E / (self.k * N * N) * (probs.sum(0) * counts).sum()
        return out.view(shape), aux


class Block(nn.Module):
    def __init__(self, c, moe):
        super().__init__()
        self.attn_norm = RMSNorm(c.hidden, c.norm_eps)
        self.attn = Attention(c)
        self.mlp_norm = RMSNorm(c.hidden, c.norm_eps)
        self.is_moe = moe
        self.mlp = MoE(c) if moe else SwiGLU(c.hidden, c.ffn)

    def forward(self, x, cos, sin, mask):
        h = x + self.attn(self.attn_norm(x), cos, sin, mask)
        if self.is_moe:
            y, aux = self.mlp(self.mlp_norm(h))
        else:
            y, aux = self.mlp(self.mlp_norm(h)), h.new_zeros(())
        return h + y, aux


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embedding = nn.Embedding(c.vocab, c.hidden)
        self.layers = nn.ModuleList(Block(c, c.moe_layers[i]) for i in range(c.layers))
        self.final_norm = RMSNorm(c.hidden, c.norm_eps)
        self.lm_head = nn.Linear(c.hidden, c.vocab, bias=False)
        S = c.seq_len
        cos, sin = self._rope(torch.float32)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.register_buffer("causal", torch.full((S, S), float("-inf")).triu(1), persistent=False)
        std, out_std = c.init_std, c.init_std / math.sqrt(2 * c.layers)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, out_std if name.endswith(("wo.weight", "fc2.weight")) else std)

    def _rope(self, dtype):
        D, S = self.c.head_dim, self.c.seq_len
        inv = self.c.rope_theta ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
        ang = torch.arange(S, dtype=torch.float64)[:, None] * inv[None]
        ang = torch.cat((ang, ang), dim=-1)
        return ang.cos().to(dtype), ang.sin().to(dtype)

    def rope_double(self):
        self.cos, self.sin = self._rope(torch.float64)
        self.causal = self.causal.double()

    def forward(self, ids, targets):
        x = self.embedding(ids)
        aux_total = x.new_zeros(())
        for layer in self.layers:
            x, aux = layer(x, self.cos, self.sin, self.causal)
            aux_total = aux_total + aux
        logits = self.lm_head(self.final_norm(x))
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))
        return loss, aux_total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/bench-small.toml")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--autocast-bf16", action="store_true",
                    help="run forward and loss under torch.autocast('cpu', dtype=torch.bfloat16): PyTorch's "
                         "CPU mixed precision, the peer of foldmoe's train.precision = \"bf16\"")
    ap.add_argument("--ddp", type=int, default=1,
                    help="processes for torch.distributed DistributedDataParallel (gloo); 1 = plain eager")
    a = ap.parse_args()
    if a.ddp > 1:
        import torch.multiprocessing as mp
        mp.spawn(run, args=(a,), nprocs=a.ddp, join=True)
        return 0
    return run(0, a)


def run(rank, a):
    world = a.ddp
    if world > 1:
        import torch.distributed as dist
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29517")
        dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    c = Cfg(load_toml(a.config))
    torch.manual_seed(c.seed)
    model = Model(c)
    if world > 1:  # each replica runs the same micro-batch count on its own data (weak scaling)
        model = torch.nn.parallel.DistributedDataParallel(model)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": c.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=c.lr, betas=c.betas, eps=c.eps)
    M, B, S = c.micro_batches, c.micro_batch, c.seq_len
    gen = torch.Generator().manual_seed(c.seed + rank)

    def step():
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(M):
            tok = torch.randint(0, c.vocab, (B, S + 1), generator=gen)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.autocast_bf16):
                loss, aux = model(tok[:, :-1], tok[:, 1:])
            ((loss + aux) / M).backward()
            total += loss.item() / M
        if c.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        opt.step()
        return total

    for _ in range(a.warmup):
        step()
    times, cpu = [], []
    loss = float("nan")
    for _ in range(a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    step_s = sorted(times)[len(times) // 2]  # median: robust to noise from other processes
    tokens = M * B * S * world
    if world > 1:
        import torch.distributed as dist
        t = torch.tensor([step_s])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)  # the step ends when the slowest replica ends
        step_s = float(t[0])
        if rank != 0:
            return 0
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, step times "
          f"{[round(t * 1e3, 1) for t in times]} ms, last loss {loss:.4f}", file=sys.stderr)
    impl = "pytorch-eager" if world == 1 else f"pytorch-ddp-gloo-{world}"
    print(json.dumps({"impl": impl + ("-autocast-bf16" if a.autocast_bf16 else ""), "processes": world,
                      "tokens_per_s": round(tokens / step_s, 2),
                      "step_ms": round(step_s * 1e3, 3), "flops_per_token": int(c.flops_per_token()),
                      "threads": torch.get_num_threads(),
                      # process CPU time per step (median): less sensitive to a loaded machine
                      "cpu_step_ms": round(sorted(cpu)[len(cpu) // 2] * 1e3, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
