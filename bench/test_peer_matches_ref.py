"""Check that bench/torch_peer.py computes the same model as tests/reference/foldmoe_ref.py
(loss + aux and every gradient, float64, a shrunken bench-small) and that its TOML fallback
parser reads configs/bench-small.toml like tomllib.

Run: /usr/bin/python3 bench/test_peer_matches_ref.py
"""
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import foldmoe_ref as R  # noqa: E402
import torch_peer as TP  # noqa: E402


def main():
    passed = failed = 0
    path = os.path.join(ROOT, "configs", "bench-small.toml")
    t = TP.load_toml(path)
    saved = TP.tomllib
    TP.tomllib = None
    t2 = TP.load_toml(path)
    TP.tomllib = saved
    ok = t == t2
    print(("PASS" if ok else "FAIL") + " fallback TOML parser == tomllib")
    passed, failed = passed + ok, failed + (not ok)

    ok = TP.Cfg(t).flops_per_token() == 31457280
    print(("PASS" if ok else "FAIL") + " bench-small flops_per_token == 31,457,280")
    passed, failed = passed + ok, failed + (not ok)

    # shrink bench-small, keep its structure
    t["model"].update(hidden=32, vocab=64, layers=2)
    t["moe"].update(ffn_hidden_size=16)
    t["train"].update(seq_len=12, micro_batch=3)
    c = TP.Cfg(t)
    torch.manual_seed(0)
    peer = TP.Model(c).double()
    peer.rope_double()  # exact float64 RoPE tables for the float64 comparison
    for n, p in peer.named_parameters():
        if n.endswith("norm.weight"):
            with torch.no_grad():
                p.add_(0.1 * torch.randn_like(p))
    cfg = R.resolve_config({s: dict(t[s]) for s in ("model", "moe", "train")})
    P = {}
    for n, p in peer.named_parameters():
        r = n.replace(".mlp.router.weight", ".moe.router.weight").replace(".mlp.experts.", ".moe.experts.")
        r = r.replace(".fc1.weight", ".fc1").replace(".fc2.weight", ".fc2")
        for w in ("wq", "wk", "wv", "wo"):
            r = r.replace(f"attn.{w}.weight", f"attn.{w}")
        P[r] = p.detach().clone().requires_grad_(True)
    assert set(P) == set(R.param_shapes(cfg)), set(P) ^ set(R.param_shapes(cfg))
    tok = torch.randint(0, 64, (3, 13))
    loss, aux = peer(tok[:, :-1], tok[:, 1:])
    (loss + aux).backward()
    out = R.run_step(P, tok, torch.ones(3, 12, dtype=torch.uint8), cfg)
    out["objective"].backward()
    worst = 0.0
    err = abs((loss + aux).item() - out["objective"].item())
    names = dict(zip([n for n, _ in peer.named_parameters()], P))
    for n, p in peer.named_parameters():
        g = P[names[n]].grad
        worst = max(worst, ((p.grad - g).abs().max() / g.abs().max().clamp_min(1e-12)).item())
    ok = err < 1e-12 and worst < 1e-10
    print(("PASS" if ok else "FAIL") + f" peer == reference (objective err {err:.2e}, worst grad rel err {worst:.2e})")
    passed, failed = passed + ok, failed + (not ok)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
