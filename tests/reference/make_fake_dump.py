"""Write a reference dump from the PyTorch reference itself (a stand-in for
`foldmoe dump-reference`), and self-test compare_dump.py with it.

  /usr/bin/python3 tests/reference/make_fake_dump.py OUT.safetensors [--preset NAME]
        [--compute-dtype float32|float64] [--corrupt-grad NAME] [--drop TENSOR]
  /usr/bin/python3 tests/reference/make_fake_dump.py --selftest

The dump's values are computed (by default) in float32, i.e. the way an fp32 implementation
would, so a passing compare also shows the 1e-4 tolerance holds for real fp32 round-off.
--selftest writes, for each preset, a clean dump (compare must pass), a dump with one gradient
element corrupted (must fail), and one with a missing gradient (must fail).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import foldmoe_ref as R  # noqa: E402
from st_io import write_safetensors  # noqa: E402

PRESETS = {
    # default routing, aux + z-loss, two micro-batches, a partial loss mask
    "default": {
        "model": dict(layers=2, hidden=32, heads=4, kv_heads=2, ffn=48, vocab=64),
        "moe": dict(num_experts=4, topk=2, ffn_hidden_size=16, load_balancing_type=["aux_loss"],
                    aux_loss_coeff=[0.01], z_loss_coeff=1e-3),
        "train": dict(micro_batch=2, micro_batches=2, seq_len=8),
        "mask_zeros": 3,
    },
    # sigmoid + router bias + scaling, capacity/position/pad, shared expert with gate, a dense
    # layer, seq-aux + global-aux
    "capacity": {
        "model": dict(layers=3, hidden=32, heads=4, kv_heads=1, ffn=40, vocab=50),
        "moe": dict(num_experts=6, topk=2, ffn_hidden_size=12, layer_freq=[1, 0, 1],
                    score_function="sigmoid", router_bias=True, topk_scaling_factor=2.0,
                    capacity_factor=1.0, drop_policy="position", pad_to_capacity=True,
                    load_balancing_type=["seq_aux_loss", "global_aux_loss"],
                    aux_loss_coeff=[0.02, 0.05], shared_expert_ffn_hidden_size=20,
                    shared_expert_gate=True),
        "train": dict(micro_batch=3, micro_batches=2, seq_len=8),
        "mask_zeros": 0,
    },
    # pre-softmax + group-limited routing, capacity by probs with a TP x CP partition,
    # per-token loss, all aux types and z-loss
    "groups": {
        "model": dict(layers=2, hidden=32, heads=2, kv_heads=2, ffn=48, vocab=40, rope_theta=500.0),
        "moe": dict(num_experts=8, topk=2, ffn_hidden_size=16, pre_softmax=True, num_groups=4,
                    group_topk=2, capacity_factor=1.25, drop_policy="probs",
                    capacity_partition=[2, 2],
                    load_balancing_type=["aux_loss", "seq_aux_loss", "global_aux_loss"],
                    aux_loss_coeff=[0.01, 0.01, 0.01], z_loss_coeff=1e-2),
        "train": dict(micro_batch=2, micro_batches=2, seq_len=8, per_token_loss=True),
        "mask_zeros": 4,
    },
}


def make_dump(path, preset="default", seed=0, compute_dtype="float32", corrupt_grad=None,
              drop=None):
    pr = PRESETS[preset]
    raw = {sec: dict(pr.get(sec, {})) for sec in ("model", "moe", "train")}
    cfg = R.resolve_config(raw)
    # config as the C++ side would write it: every key of the sections, nulls for absent options
    full = {sec: dict(vars(getattr(cfg, sec))) for sec in ("model", "moe", "train")}
    full["parallel"] = dict(tp=1, cp=1, pp=1, vpp=1, ep=1, etp=0, order="tp-cp-ep-dp-pp",
                            distributed_optimizer=False)
    P32 = {k: v.float() for k, v in R.init_params(cfg, seed, torch.float64).items()}
    g = torch.Generator().manual_seed(seed + 1)
    for k in P32:  # make norms and router biases non-trivial
        if k.endswith("norm.weight"):
            P32[k] = 1.0 + 0.1 * torch.randn(P32[k].shape, generator=g)
        if k.endswith("router.bias"):
            P32[k] = 0.1 * torch.randn(P32[k].shape, generator=g)
    M, B, S, V = cfg.train.micro_batches, cfg.train.micro_batch, cfg.train.seq_len, cfg.model.vocab
    tokens = torch.randint(0, V, (M * B, S + 1), generator=g, dtype=torch.int64)
    mask = torch.ones(M * B, S, dtype=torch.uint8)
    flat = mask.view(-1)
    flat[torch.randperm(flat.numel(), generator=g)[:pr.get("mask_zeros", 0)]] = 0

    dt = getattr(torch, compute_dtype)
    P = {k: v.to(dt).clone().requires_grad_(True) for k, v in P32.items()}
    out = R.run_step(P, tokens, mask, cfg)
    out["objective"].backward()

    T = {}
    for k, v in P32.items():
        T[f"param/{k}"] = v.numpy()
        T[f"grad/{k}"] = (P[k].grad if P[k].grad is not None else torch.zeros_like(v)).float().numpy()
    T["batch/tokens"] = tokens.to(torch.int32).numpy()
    T["batch/mask"] = mask.numpy()
    T["out/lm_loss"] = np.array([out["lm_loss"]], dtype=np.float64)
    T["out/objective"] = np.array([out["objective"].item()], dtype=np.float64)
    T["out/logits0"] = out["logits0"].float().numpy()
    for t in ("aux_loss", "seq_aux_loss", "z_loss", "global_aux_loss"):
        if t in out["aux"]:
            T[f"out/{t}"] = np.array([out["aux"][t]], dtype=np.float64)
        elif t != "global_aux_loss":
            T[f"out/{t}"] = np.array([0.0], dtype=np.float64)
    if corrupt_grad:
        key = f"grad/{corrupt_grad}"
        a = T[key].copy()
        i = int(np.abs(a).argmax())
        a.reshape(-1)[i] *= 1.001  # 1e-3 relative on the largest element
        T[key] = a
    if drop:
        del T[drop]
    write_safetensors(path, T, {"config": json.dumps(full), "format": "foldmoe-reference-dump"})
    return cfg


def run_compare(path, *extra):
    p = subprocess.run([sys.executable, os.path.join(HERE, "compare_dump.py"), path, *extra],
                       capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def selftest():
    passed = failed = 0

    def expect(desc, cond, output):
        nonlocal passed, failed
        if cond:
            passed += 1
            print(f"PASS {desc}")
        else:
            failed += 1
            print(f"FAIL {desc}\n{output}")

    with tempfile.TemporaryDirectory() as d:
        for preset in PRESETS:
            good = os.path.join(d, f"{preset}.safetensors")
            make_dump(good, preset)
            rc, log = run_compare(good)
            last = log.strip().splitlines()[-1]
            expect(f"{preset}: fp32 dump matches the reference ({last})", rc == 0, log)
            if preset == "default":
                print("\n".join("    " + l for l in log.strip().splitlines()[-8:]))
            name = "layers.0.moe.router.weight" if preset != "capacity" else "layers.1.mlp.fc2"
            bad = os.path.join(d, f"{preset}_bad.safetensors")
            make_dump(bad, preset, corrupt_grad=name)
            rc, log = run_compare(bad)
            expect(f"{preset}: corrupted grad/{name} is detected", rc != 0 and f"FAIL" in log
                   and f"grad/{name}" in log, log)
            miss = os.path.join(d, f"{preset}_miss.safetensors")
            make_dump(miss, preset, drop="grad/lm_head.weight")
            rc, log = run_compare(miss)
            expect(f"{preset}: missing grad/lm_head.weight is reported", rc != 0 and "missing" in log, log)
        trunc = os.path.join(d, "trunc.safetensors")
        with open(os.path.join(d, "default.safetensors"), "rb") as f:
            blob = f.read()
        with open(trunc, "wb") as f:
            f.write(blob[:len(blob) // 2])
        rc, log = run_compare(trunc)
        expect("truncated file is rejected", rc != 0 and "ERROR" in log, log)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compute-dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--corrupt-grad", help="parameter name whose largest gradient element is scaled by 1.001")
    ap.add_argument("--drop", help="tensor key to omit (e.g. grad/lm_head.weight)")
    ap.add_argument("--selftest", action="store_true")
    a = ap.parse_args()
    if a.selftest:
        return selftest()
    if not a.out:
        ap.error("OUT path required (or --selftest)")
    make_dump(a.out, a.preset, a.seed, a.compute_dtype, a.corrupt_grad, a.drop)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
