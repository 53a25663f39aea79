"""Compare a foldmoe reference dump (docs/model.md "Reference dump") with the PyTorch reference.

Usage: /usr/bin/python3 tests/reference/compare_dump.py DUMP.safetensors [--tol 1e-4]
           [--floor 1e-6] [--dtype float64|float32] [--moe-mask-from-loss-mask] [--show 15]

Loads param/<name>, batch/tokens, batch/mask and the metadata `config` (JSON), recomputes one
step's objective in float64 with autograd, and compares out/lm_loss, out/objective, out/logits0,
every grad/<name> and the logged aux values (out/aux_loss, out/seq_aux_loss, out/z_loss, and
out/global_aux_loss if present).

Error measure per tensor: max|dump - ref| / max(max|ref|, floor)  (ref = this reference).
Exit status 0 iff every check passes; the last line is 'N passed, M failed'.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import foldmoe_ref as R  # noqa: E402
from st_io import SafetensorsError, read_safetensors  # noqa: E402

# bf16 runs: the reference rounds the same operands (float64 sums); what remains is operands that
# round differently because fp32 and float64 disagree in their last bits, and the attention's
# probabilities, which foldmoe rounds tile by tile before normalising (docs/precision.md).
BF16_TOL = 5e-3

AUX_OUT = {"aux_loss": "out/aux_loss", "seq_aux_loss": "out/seq_aux_loss", "z_loss": "out/z_loss",
           "global_aux_loss": "out/global_aux_loss"}


def rel_err(a, b, floor):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf, f"shape {a.shape} != reference {b.shape}"
    if not np.isfinite(a).all():
        return math.inf, "non-finite values in dump"
    if a.size == 0:
        return 0.0, ""
    den = max(float(np.abs(b).max()), floor)
    return float(np.abs(a - b).max()) / den, ""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dump")
    ap.add_argument("--tol", type=float, default=None,
                    help="relative tolerance (default 1e-4, docs/moe.md §12; 1e-2 for train.precision = bf16, "
                         "docs/precision.md)")
    ap.add_argument("--floor", type=float, default=1e-6, help="denominator floor for near-zero tensors")
    ap.add_argument("--precision", choices=["config", "fp32", "bf16"], default="config",
                    help="matrix-product rounding of the reference (default: the dump's train.precision)")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--moe-mask-from-loss-mask", action="store_true",
                    help="treat batch/mask as the MoE padding mask of docs/moe.md §4.7 (default: the "
                         "loss mask only affects the cross-entropy)")
    ap.add_argument("--show", type=int, default=15, help="rows of the worst-tensor table")
    args = ap.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    def fatal(msg):
        print(f"ERROR: {msg}")
        print("0 passed, 1 failed")
        return 2

    try:
        T, meta = read_safetensors(args.dump)
    except (OSError, SafetensorsError) as e:
        return fatal(f"cannot read dump: {e}")
    if "config" not in meta:
        return fatal("dump has no metadata 'config'")
    try:
        raw = json.loads(meta["config"])
    except json.JSONDecodeError as e:
        return fatal(f"metadata 'config' is not JSON: {e}")
    raw.setdefault("model", {})
    if not raw["model"].get("vocab") and "param/embedding.weight" in T:
        raw["model"]["vocab"] = int(T["param/embedding.weight"].shape[0])
    try:
        cfg = R.resolve_config(raw)
        if args.precision != "config":
            cfg.train.precision = args.precision
        R.set_precision(cfg.train.precision)
    except AssertionError as e:
        return fatal(f"unsupported config: {e}")
    if args.tol is None:
        args.tol = BF16_TOL if cfg.train.precision == "bf16" else 1e-4

    par = raw.get("parallel", {}) or {}
    big = {k: par.get(k) for k in ("tp", "cp", "pp", "ep", "dp") if isinstance(par.get(k), int) and par.get(k) > 1}
    if big:
        print(f"WARNING: dump config has parallel {big}; this reference is single-process (DP = 1; "
              f"capacity per whole micro-batch unless moe.capacity_partition; global aux at DP = 1)")
    results = []  # (name, err, tol, ok, note)
    problems = []

    def structural(name, ok, note):
        results.append((name, 0.0 if ok else math.inf, 0.0, ok, note))

    # ---- parameters
    shapes = R.param_shapes(cfg)
    dump_params = {k[6:] for k in T if k.startswith("param/")}
    dump_grads = {k[5:] for k in T if k.startswith("grad/")}
    for extra in sorted(dump_params - set(shapes)):
        structural(f"param/{extra}", False, "in dump but not a parameter of this config")
    for extra in sorted(dump_grads - set(shapes)):
        structural(f"grad/{extra}", False, "in dump but not a parameter of this config")
    P = {}
    for name, shp in shapes.items():
        key = f"param/{name}"
        if key not in T:
            structural(key, False, "missing in dump")
            continue
        a = T[key]
        if tuple(a.shape) != tuple(shp):
            structural(key, False, f"shape {tuple(a.shape)} != expected {tuple(shp)}")
            continue
        P[name] = torch.from_numpy(a.astype(np.float64)).to(dtype).requires_grad_(True)
    for key in ("batch/tokens", "batch/mask", "out/lm_loss", "out/objective", "out/logits0",
                "out/aux_loss", "out/seq_aux_loss", "out/z_loss"):
        if key not in T:
            structural(key, False, "missing in dump")
    if any(not r[3] for r in results):
        return report(results, args)

    state = R.MoEState()
    for name in shapes:  # optional expert-bias buffers
        if name.endswith("router.weight"):
            bname = name.replace("router.weight", "router.expert_bias")
            for k in (f"buffer/{bname}", f"param/{bname}"):
                if k in T:
                    state.expert_bias[name.replace("router.weight", "")] = torch.from_numpy(
                        T[k].astype(np.float64))

    tokens = torch.from_numpy(T["batch/tokens"].astype(np.int64))
    mask = torch.from_numpy(T["batch/mask"].astype(np.uint8))
    M, B, S = cfg.train.micro_batches, cfg.train.micro_batch, cfg.train.seq_len
    if tuple(tokens.shape) != (M * B, S + 1) or tuple(mask.shape) != (M * B, S):
        return fatal(f"batch shapes tokens {tuple(tokens.shape)} mask {tuple(mask.shape)} do not match "
                     f"train.micro_batches={M}, micro_batch={B}, seq_len={S}")
    if tokens.min() < 0 or tokens.max() >= cfg.model.vocab:
        return fatal(f"token ids outside [0, {cfg.model.vocab})")

    R.reset_margins()
    out = R.run_step(P, tokens, mask, cfg, moe_mask_from_loss_mask=args.moe_mask_from_loss_mask,
                     state=state)
    out["objective"].backward()

    def check(name, dump_val, ref_val, tol=args.tol):
        err, note = rel_err(dump_val, ref_val, args.floor)
        results.append((name, err, tol, err <= tol, note))

    check("out/lm_loss", T["out/lm_loss"].reshape(-1)[:1], np.array([out["lm_loss"]]))
    check("out/objective", T["out/objective"].reshape(-1)[:1], np.array([out["objective"].item()]))
    check("out/logits0", T["out/logits0"], out["logits0"].double().numpy())
    for name in shapes:
        key = f"grad/{name}"
        if key not in T:
            structural(key, False, "missing in dump")
            continue
        g = P[name].grad
        ref = np.zeros(shapes[name]) if g is None else g.double().numpy()
        check(key, T[key], ref)
    enabled = set(out["aux"])
    for t, key in AUX_OUT.items():
        if key not in T:
            continue
        dv = T[key].reshape(-1)[:1]
        if t in enabled:
            check(key, dv, np.array([out["aux"][t]]))
        else:
            v = float(dv[0])
            ok = v == 0.0 or math.isnan(v)
            structural(key, ok, f"type not enabled; dump logs {v} (expected 0 or NaN, not compared)")

    margins = dict(R.MARGINS)
    if cfg.train.precision == "bf16" and args.precision == "config":
        # Control: the same step without the bf16 rounding must be clearly farther from the dump
        # than the rounded reference is, or the rounding model (docs/precision.md) explains nothing.
        worst_bf16 = max(r[1] for r in results if r[0] == "out/logits0" or r[0].startswith("grad/"))
        R.set_precision("fp32")
        P32 = {k: v.detach().clone().requires_grad_(True) for k, v in P.items()}
        state32 = R.MoEState()
        state32.expert_bias = dict(state.expert_bias)
        out32 = R.run_step(P32, tokens, mask, cfg, moe_mask_from_loss_mask=args.moe_mask_from_loss_mask,
                           state=state32)
        out32["objective"].backward()
        errs = [rel_err(T["out/logits0"], out32["logits0"].double().numpy(), args.floor)[0]]
        for name in shapes:
            g = P32[name].grad
            errs.append(rel_err(T[f"grad/{name}"], np.zeros(shapes[name]) if g is None else g.double().numpy(),
                                args.floor)[0])
        worst_fp32 = max(errs)
        ratio = worst_fp32 / max(worst_bf16, 1e-12)
        print(f"bf16 control: worst error against the unrounded reference {worst_fp32:.3e}, against the "
              f"bf16-rounded one {worst_bf16:.3e} ({ratio:.1f}x closer)")
        results.append(("control/bf16_rounding_explains_dump", 0.0 if ratio >= 2 else math.inf, 0.0, ratio >= 2,
                        f"the bf16-rounded reference is only {ratio:.2f}x closer than the unrounded one (need 2x)"
                        if ratio < 2 else ""))
    if margins["topk"] < 1e-5 or margins["capacity"] < 1e-5:
        print(f"WARNING: near-tie routing decisions (min top-k margin {margins['topk']:.3e}, min capacity "
              f"margin {margins['capacity']:.3e}); an fp32 implementation may legitimately route "
              f"differently — try --dtype float32 or another seed")
    return report(results, args, margins)


def report(results, args, margins=None):
    print(f"dump: {args.dump}")
    if margins:
        print(f"decision margins: top-k {margins['topk']:.3e}, capacity {margins['capacity']:.3e}")
    fails = [r for r in results if not r[3]]
    worst = sorted((r for r in results if r[3]), key=lambda r: -r[1])[:args.show]
    print(f"{'status':6} {'rel_err':>10} {'tol':>8}  tensor")
    for name, err, tol, ok, note in fails + worst:
        print(f"{'OK' if ok else 'FAIL':6} {err:10.3e} {tol:8.1e}  {name}" + (f"   [{note}]" if note else ""))
    npass, nfail = len(results) - len(fails), len(fails)
    if fails:
        print(f"MISMATCH: {nfail} check(s) failed, first: {fails[0][0]}" + (f" ({fails[0][4]})" if fails[0][4] else ""))
    print(f"{npass} passed, {nfail} failed")
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
