"""Self-test of the PyTorch reference against the worked numbers of docs/moe.md (§2.5, §2.7, §3.4,
docs/moe.md §4.8), the explicit gradient formulas of §2.6 / §5.1, a few invariants of §12, and the FLOPs
of docs/dense-parallel.md §11.

Run: /usr/bin/python3 tests/reference/test_ref_worked_examples.py
"""
import math
import os
import sys
import traceback

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import foldmoe_ref as R  # noqa: E402

torch.set_default_dtype(torch.float64)

LOGITS = torch.tensor([[2.0, 1.0, 0.0, -1.0],
                       [0.5, 0.5, 0.0, 0.0],
                       [-1.0, 0.0, 3.0, 1.0],
                       [0.0, 2.0, 2.0, 0.0]], dtype=torch.float64)

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def close(a, b, tol=5e-7, what=""):
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    err = (a - b).abs().max().item() if a.numel() else 0.0
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
    assert err <= tol, f"{what}: max abs err {err:.3e} > {tol:.1e}\n got {a}\n want {b}"


def sets(rmap):
    return [set(torch.nonzero(r).flatten().tolist()) for r in rmap]


def weights(probs, rmap):
    """p per token as {expert: weight}."""
    return [{e: probs[n, e].item() for e in sorted(s)} for n, s in enumerate(sets(rmap))]


def check_table(probs, rmap, want, what):
    got_sets = sets(rmap)
    for n, w in enumerate(want):
        assert got_sets[n] == set(w), f"{what} t{n}: experts {got_sets[n]} != {set(w)}"
        for e, val in w.items():
            close(probs[n, e].item(), val, 5e-7, f"{what} t{n} e{e}")


# ------------------------------------------------------------------ docs/moe.md §2.5 routing table
@test
def routing_post_softmax():
    p, m = R.route(LOGITS, 2)
    check_table(p, m, [{0: 0.7310586, 1: 0.2689414}, {0: 0.5, 1: 0.5},
                       {2: 0.8807971, 3: 0.1192029}, {1: 0.5, 2: 0.5}], "post-softmax")
    assert m.sum(0).tolist() == [2, 3, 2, 1], "routed counts"


@test
def routing_pre_softmax():
    p, m = R.route(LOGITS, 2, pre_softmax=True)
    check_table(p, m, [{0: 0.6439143, 1: 0.2368828}, {0: 0.3112297, 1: 0.3112297},
                       {2: 0.8309527, 3: 0.1124572}, {1: 0.4403985, 2: 0.4403985}], "pre-softmax")


@test
def routing_sigmoid():
    p, m = R.route(LOGITS, 2, score_function="sigmoid")
    check_table(p, m, [{0: 0.5464491, 1: 0.4535509}, {0: 0.5, 1: 0.5},
                       {2: 0.565785, 3: 0.434215}, {1: 0.5, 2: 0.5}], "sigmoid")


@test
def routing_sigmoid_expert_bias():
    p, m = R.route(LOGITS, 2, score_function="sigmoid",
                   expert_bias=torch.tensor([0.0, 0.0, 0.0, 0.5]))
    check_table(p, m, [{0: 0.7660847, 3: 0.2339153}, {0: 0.5545496, 3: 0.4454504},
                       {2: 0.565785, 3: 0.434215}, {1: 0.6378903, 3: 0.3621097}], "sigmoid+bias")


@test
def routing_group_limited():
    z = R.group_limit(LOGITS, 2, 2, 1)
    # group scores: t0 3,-1; t1 1,0; t2 -1,4; t3 2,2 (tie -> group 0)
    keep = [[0, 1], [0, 1], [2, 3], [0, 1]]
    for n in range(4):
        fin = torch.isfinite(z[n]).nonzero().flatten().tolist()
        assert fin == keep[n], f"group choice t{n}: {fin} != {keep[n]}"
    p, m = R.route(LOGITS, 2, num_groups=2, group_topk=1)
    check_table(p, m, [{0: 0.7310586, 1: 0.2689414}, {0: 0.5, 1: 0.5},
                       {2: 0.8807971, 3: 0.1192029}, {0: 0.1192029, 1: 0.8807971}], "group")


@test
def routing_topk_scaling():
    p, m = R.route(LOGITS, 2, topk_scaling_factor=2.5)
    close(p[0, 0].item(), 2.5 * 0.7310586, 2e-6, "scaled")
    close(p.sum(-1), torch.full((4,), 2.5), 1e-12, "scaled sums")


# ------------------------------------------------------------------ docs/moe.md §2.7 expert bias update
@test
def expert_bias_update():
    cfg = R.resolve_config({"moe": {"num_experts": 4, "score_function": "sigmoid",
                                    "enable_expert_bias": True, "bias_update_rate": 1e-3}})
    st = R.MoEState()
    st.bias_counts["l"] = torch.tensor([2, 3, 2, 1])
    R.update_expert_bias(cfg, st)
    close(st.expert_bias["l"], torch.tensor([0.0, -1e-3, 0.0, 1e-3]), 0, "bias update")
    assert st.bias_counts == {}


# ------------------------------------------------------------------ docs/moe.md §3.4 capacity table
def cap_case(cf, policy):
    p, m = R.route(LOGITS, 2)
    keep, ceffs = R.capacity_keep(p, m, 2, cf, policy)
    fm = m & keep
    fillers = keep & ~m
    return sets(fm), fm.sum(0).tolist(), sorted(map(tuple, torch.nonzero(fillers).tolist())), ceffs


@test
def capacity_cf1_position():
    s, per, fill, c = cap_case(1.0, "position")
    assert c == [2]
    assert s == [{0, 1}, {0, 1}, {2, 3}, {2}], s
    assert per == [2, 2, 2, 1] and fill == [(0, 3)], (per, fill)


@test
def capacity_cf1_probs():
    s, per, fill, c = cap_case(1.0, "probs")
    assert c == [2]
    assert s == [{0}, {0, 1}, {2, 3}, {1, 2}], s
    assert per == [2, 2, 2, 1] and fill == [(0, 3)], (per, fill)


@test
def capacity_cf05_position():
    s, per, fill, c = cap_case(0.5, "position")
    assert c == [1]
    assert s == [{0, 1}, set(), {2, 3}, set()], s
    assert per == [1, 1, 1, 1] and fill == [], (per, fill)


@test
def capacity_cf05_probs():
    s, per, fill, c = cap_case(0.5, "probs")
    assert c == [1]
    assert s == [{0}, {1}, {2, 3}, set()], s
    assert per == [1, 1, 1, 1] and fill == [], (per, fill)


@test
def capacity_formula_and_clamp():
    assert R.capacity(4, 2, 4, 1.0) == 2
    assert R.capacity(10, 2, 8, 1.1) == math.ceil((20 / 8) * 1.1) == 3
    assert R.capacity(4, 2, 4, 10.0) == 4  # clamp to N


@test
def capacity_partition_units():
    # S=8, B=2, tp=2, cp=2: chunks of 2 positions; cp0 = chunks 0,3 -> pos 0,1,6,7; tp pieces
    u = R.capacity_units(8, 2, [2, 2])
    pos = [sorted({int(n) // 2 for n in x}) for x in u]
    assert pos == [[0, 1], [6, 7], [2, 3], [4, 5]], pos
    assert u[0].tolist() == [0, 1, 2, 3]  # local position then batch index


# ------------------------------------------------------------------ docs/moe.md §4.8 aux / z-loss
A_WANT = torch.tensor([[0.6439143, 0.2368828, 0.08714432, 0.0320586],
                       [0.3112297, 0.3112297, 0.1887703, 0.1887703],
                       [0.01521943, 0.0413707, 0.8309527, 0.1124572],
                       [0.05960146, 0.4403985, 0.4403985, 0.05960146]])


@test
def aux_scores_and_counts():
    a = R.aux_scores(LOGITS, "softmax")
    close(a, A_WANT, 6e-8, "aux scores")
    close(a.sum(0), torch.tensor([1.029965, 1.029882, 1.547266, 0.3928876]), 1e-6, "Σa")
    c = R.aux_counts(a, 2, torch.ones(4, dtype=torch.bool))
    assert c.tolist() == [2, 3, 2, 1]


@test
def aux_loss_value_and_pieces():
    a = R.aux_scores(LOGITS, "softmax")
    c = R.aux_counts(a, 2, torch.ones(4, dtype=torch.bool))
    L = R.aux_lambda(a, c, 4, 2, 4).item()
    close(L, 1.07962426, 5e-9, "aux_loss")
    p0 = R.aux_lambda(a[:2], c, 4, 2, 4).item()
    p1 = R.aux_lambda(a[2:], c, 4, 2, 4).item()
    close(p0, 0.540910443, 5e-9, "piece 0")
    close(p1, 0.53871382, 5e-8, "piece 1")


def tiny_moe_cfg(B, S, types, coeffs, **moe):
    d = {"model": {"layers": 1, "hidden": 4, "heads": 1, "kv_heads": 1, "ffn": 4, "vocab": 8},
         "moe": dict(num_experts=4, topk=2, ffn_hidden_size=2, load_balancing_type=types,
                     aux_loss_coeff=coeffs, **{"z_loss_coeff": None, **moe}),
         "train": {"micro_batch": B, "seq_len": S, "micro_batches": 1}}
    return R.resolve_config(d)


def moe_pieces_for_logits(cfg, logits, B, S):
    """Run moe_block with router weights that reproduce the given logits (x = one-hot rows)."""
    N, E = logits.shape
    H = N
    cfg.model.hidden = H
    x = torch.eye(N).view(S, B, H)
    P = {"moe.router.weight": logits.t().clone()}
    for e in range(E):
        P[f"moe.experts.{e}.fc1"] = torch.zeros(4, H)
        P[f"moe.experts.{e}.fc2"] = torch.zeros(H, 2)
    _, pieces, _ = R.moe_block(x, P, "moe.", cfg, R.MoEState())
    return pieces


@test
def seq_aux_loss_value():
    # B=2, S=2, rows n = s*B + b: sequence 0 = {t0, t2}, sequence 1 = {t1, t3}
    cfg = tiny_moe_cfg(2, 2, ["aux_loss", "seq_aux_loss"], [1.0, 1.0], z_loss_coeff=1.0)
    pc = moe_pieces_for_logits(cfg, LOGITS, 2, 2)
    close(pc["seq_aux_loss"].item(), 1.1258141, 5e-8, "seq_aux_loss")
    close(pc["aux_loss"].item(), 1.07962426, 5e-9, "aux_loss via block")
    close(pc["z_loss"].item(), 6.70809338, 5e-8, "z-loss via block")
    # per-sequence values
    a = R.aux_scores(LOGITS, "softmax")
    one = torch.ones(2, dtype=torch.bool)
    L0 = R.aux_lambda(a[[0, 2]], R.aux_counts(a[[0, 2]], 2, one), 2, 2, 4).item()
    L1 = R.aux_lambda(a[[1, 3]], R.aux_counts(a[[1, 3]], 2, one), 2, 2, 4).item()
    close(L0, 1.0, 1e-12, "L_0")
    close(L1, 1.2516282, 5e-8, "L_1")


@test
def seq_aux_equals_aux_when_b1():
    cfg = tiny_moe_cfg(1, 4, ["aux_loss", "seq_aux_loss"], [1.0, 1.0])
    pc = moe_pieces_for_logits(cfg, LOGITS, 1, 4)
    assert pc["seq_aux_loss"].item() == pc["aux_loss"].item()


@test
def z_loss_value_and_pieces():
    lse = torch.logsumexp(LOGITS, -1)
    close(lse, torch.tensor([2.44019, 1.667224, 3.185182, 2.820075]), 6e-7, "lse")
    close(R.zloss_sum(LOGITS, torch.ones(4, dtype=torch.bool)).item(), 6.70809338, 5e-9, "z")
    close((lse[:2] ** 2).sum().item() / 4, 2.18354055, 5e-9, "z piece 0")
    close((lse[2:] ** 2).sum().item() / 4, 4.52455284, 5e-9, "z piece 1")


@test
def uniform_routing_logs_one():
    # W_g = 0 -> aux, seq-aux, global-aux each exactly 1.0 (docs/moe.md §12.5)
    cfg = tiny_moe_cfg(2, 4, ["aux_loss", "seq_aux_loss", "global_aux_loss"], [1.0, 1.0, 1.0])
    pc = moe_pieces_for_logits(cfg, torch.zeros(8, 4), 2, 4)
    for t in ("aux_loss", "seq_aux_loss", "global_aux_loss"):
        assert pc[t].item() == 1.0, (t, pc[t].item())


# ------------------------------------------------------------------ docs/moe.md §2.6 / §5.1 gradients
def rand_case(N=7, E=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, E, generator=g), torch.randn(N, E, generator=g)


@test
def router_backward_formulas():
    for variant in ("post", "pre", "sig2", "sig1"):
        for cs in (None, 1.7):
            ell, G = rand_case(seed=3)
            ell.requires_grad_(True)
            k = 1 if variant == "sig1" else 2
            kw = dict(pre_softmax=variant == "pre",
                      score_function="sigmoid" if variant.startswith("sig") else "softmax",
                      topk_scaling_factor=cs)
            p, m = R.route(ell, k, **kw)
            # drop a few pairs: they pass no gradient
            drop = torch.zeros_like(m)
            drop[0, m[0].nonzero()[0, 0]] = True
            kept = m & ~drop
            L = (torch.where(kept, p, torch.zeros_like(p)) * G).sum()
            (got,) = torch.autograd.grad(L, ell)
            c = cs or 1.0
            gh = torch.where(kept, c * G, torch.zeros_like(G))  # ĝ = c_s·∂L/∂w
            e = ell.detach()
            if variant == "post":
                pu = torch.where(m, torch.softmax(e.masked_fill(~m, -math.inf), -1), torch.zeros_like(e))
                want = pu * (gh - (pu * gh).sum(-1, keepdim=True))
            elif variant == "pre":
                s = torch.softmax(e, -1)
                sI = torch.where(m, s, torch.zeros_like(s))
                want = s * (gh - (sI * gh).sum(-1, keepdim=True))
            elif variant == "sig2":
                s = torch.sigmoid(e)
                sI = torch.where(m, s, torch.zeros_like(s))
                Z = sI.sum(-1, keepdim=True) + 1e-20
                pu = sI / Z
                ds = torch.where(m, (gh - (pu * gh).sum(-1, keepdim=True)) / Z, torch.zeros_like(s))
                want = ds * s * (1 - s)
            else:
                s = torch.sigmoid(e)
                want = gh * s * (1 - s)
            close(got, want, 1e-12, f"router backward {variant} cs={cs}")


@test
def aux_and_z_gradient_injection():
    for sf in ("softmax", "sigmoid"):
        ell, _ = rand_case(N=9, E=6, seed=5)
        ell.requires_grad_(True)
        k, E, T, alpha, az = 2, 6, 9, 0.37, 0.11
        a = R.aux_scores(ell, sf)
        c = R.aux_counts(a, k, torch.ones(9, dtype=torch.bool))
        L = alpha * R.aux_lambda(a, c, T, k, E) + az * R.zloss_sum(ell, torch.ones(9, dtype=torch.bool))
        (got,) = torch.autograd.grad(L, ell)
        e = ell.detach()
        gamma = alpha * E * c / (k * T * T)
        if sf == "softmax":
            ad = torch.softmax(e, -1)
            want = ad * (gamma - (ad * gamma).sum(-1, keepdim=True))
        else:
            s = torch.sigmoid(e)
            Z = s.sum(-1, keepdim=True) + 1e-20
            ad = s / Z
            ds = (gamma - (ad * gamma).sum(-1, keepdim=True)) / Z
            want = ds * s * (1 - s)
        lse = torch.logsumexp(e, -1, keepdim=True)
        want = want + (2 * az * lse / T) * torch.softmax(e, -1)
        close(got, want, 1e-12, f"aux+z injected gradient ({sf})")


# ------------------------------------------------------------------ docs/moe.md §12 invariants on the model
def small_cfg(**over):
    d = {"model": {"layers": 2, "hidden": 16, "heads": 4, "kv_heads": 2, "ffn": 24, "vocab": 32},
         "moe": {"num_experts": 4, "topk": 2, "ffn_hidden_size": 8,
                 "load_balancing_type": ["aux_loss"], "aux_loss_coeff": [0.01], "z_loss_coeff": None},
         "train": {"micro_batch": 2, "seq_len": 6, "micro_batches": 1}}
    for k, v in over.items():
        sec, key = k.split("__")
        d.setdefault(sec, {})[key] = v
    return R.resolve_config(d)


def grads_of(cfg, P, tokens, mask):
    P = {k: v.clone().requires_grad_(True) for k, v in P.items()}
    out = R.run_step(P, tokens, mask, cfg)
    out["objective"].backward()
    return out, {k: v.grad for k, v in P.items()}


def batch(cfg, seed=1):
    g = torch.Generator().manual_seed(seed)
    M, B, S = cfg.train.micro_batches, cfg.train.micro_batch, cfg.train.seq_len
    return (torch.randint(0, cfg.model.vocab, (M * B, S + 1), generator=g),
            torch.ones(M * B, S, dtype=torch.uint8))


@test
def e1_k1_equals_dense():
    cfgm = small_cfg(moe__num_experts=1, moe__topk=1, moe__ffn_hidden_size=24,
                     moe__aux_loss_coeff=[0.0])
    cfgd = small_cfg(moe__num_experts=0)
    Pm = R.init_params(cfgm, 7)
    Pd = {}
    for k, v in Pm.items():
        if ".moe.experts.0." in k:
            Pd[k.replace("moe.experts.0.", "mlp.")] = v
        elif "router" not in k:
            Pd[k] = v
    tok, mask = batch(cfgm)
    om, gm = grads_of(cfgm, Pm, tok, mask)
    od, gd = grads_of(cfgd, Pd, tok, mask)
    close(om["objective"].item(), od["objective"].item(), 1e-12, "E=1 objective")
    for k in Pd:
        km = k.replace("mlp.", "moe.experts.0.")
        close(gm[km], gd[k], 1e-12, f"E=1 grad {k}")
    assert gm["layers.0.moe.router.weight"].abs().max().item() == 0.0


@test
def large_cf_equals_dropless():
    cfg0 = small_cfg()
    cfg1 = small_cfg(moe__capacity_factor=2.0, moe__pad_to_capacity=True)  # CF >= E/k
    P = R.init_params(cfg0, 3)
    tok, mask = batch(cfg0)
    o0, g0 = grads_of(cfg0, P, tok, mask)
    o1, g1 = grads_of(cfg1, P, tok, mask)
    assert o0["objective"].item() == o1["objective"].item()
    for k in g0:
        assert torch.equal(g0[k], g1[k]), k


@test
def microbatch_invariance_seq_aux():
    for per_token in (False, True):
        base = dict(moe__load_balancing_type=["seq_aux_loss"], moe__aux_loss_coeff=[0.3],
                    train__per_token_loss=per_token)
        c21 = small_cfg(train__micro_batch=2, train__micro_batches=1, **base)
        c12 = small_cfg(train__micro_batch=1, train__micro_batches=2, **base)
        P = R.init_params(c21, 4)
        tok, mask = batch(c21)
        oa, ga = grads_of(c21, P, tok, mask)
        ob, gb = grads_of(c12, P, tok, mask)
        close(oa["objective"].item(), ob["objective"].item(), 1e-12, "objective")
        for k in ga:
            close(ga[k], gb[k], 1e-12, f"grad {k} per_token={per_token}")


@test
def flops_bench_small():
    cfg = R.resolve_config({"model": {"layers": 4, "hidden": 256, "heads": 8, "kv_heads": 4,
                                      "vocab": 4096, "ffn": 512},
                            "moe": {"num_experts": 8, "topk": 2, "ffn_hidden_size": 512},
                            "train": {"seq_len": 256}})
    assert R.flops_per_token(cfg) == 31457280, R.flops_per_token(cfg)


def main():
    passed = failed = 0
    for fn in TESTS:
        try:
            fn()
            passed += 1
            print(f"PASS {fn.__name__}")
        except Exception:
            failed += 1
            print(f"FAIL {fn.__name__}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
