"""End-to-end training: the built-in tiny MoE learns, resuming is exact, outputs are complete."""
import json
import os

from e2e_common import main, metrics, run, tmpdir


def test_tiny_moe_300_steps_halves_the_loss():
    d = tmpdir()
    out = run("train", f"--train.run_dir={d}", "--log.interval=100").stdout
    m = metrics(d)
    assert len(m) == 300, len(m)
    first = m[0]["lm_loss"]
    last = sum(x["lm_loss"] for x in m[-10:]) / 10
    assert last <= 0.5 * first, f"loss {first:.4f} -> {last:.4f}: did not fall by half"
    assert "step   300 | lm" in out
    # Every step line carries the expert load; per-task expert load is in the metrics.
    tpe = m[-1]["tokens_per_expert"]
    assert len(tpe) == 2 and len(tpe[0]) == 8
    assert sum(tpe[0]) == 16 * 64 * 2, sum(tpe[0])  # dropless: every token routed to k experts
    per_task = m[-1]["task_tokens_per_expert"]
    assert set(per_task) == {"add", "reverse", "sort", "lookup", "chain", "word"}, per_task.keys()
    # The resolved config and a complete final checkpoint are written.
    assert os.path.exists(os.path.join(d, "config.toml"))
    ck = os.path.join(d, "checkpoints", "step-00000300")
    assert os.path.exists(os.path.join(ck, "COMPLETE"))
    # Evaluation reads it back.
    ev = run("eval", "--checkpoint", ck, "--samples", "20").stdout
    res = json.loads(ev.strip().splitlines()[-1])
    assert res["step"] == 300 and set(res["accuracy"]) == {"add", "reverse", "sort", "lookup"}
    assert res["heldout_loss"] < 0.6 * first, res


def test_resume_reproduces_the_uninterrupted_losses_exactly():
    common = ["--train.steps=24", "--train.micro_batches=2", "--train.micro_batch=4", "--optim.warmup_steps=5",
              "--moe.z_loss_coeff=0.001", "--moe.input_jitter_eps=0.01"]
    full, part = tmpdir(), tmpdir()
    run("train", f"--train.run_dir={full}", *common)
    run("train", f"--train.run_dir={part}", "--checkpoint.interval=10", "--checkpoint.save_final=false", *common)
    # Resume from step 10 in a fresh run directory.
    res = tmpdir()
    run("train", f"--train.run_dir={res}", f"--checkpoint.load={part}/checkpoints/step-00000010", *common)
    a = [x["lm_loss"] for x in metrics(full)]
    b = [x["lm_loss"] for x in metrics(res)]
    assert len(b) == 14 and [x["step"] for x in metrics(res)][0] == 11
    assert a[10:] == b, f"resumed losses differ:\n{a[10:]}\n{b}"
    ga = [x["grad_norm"] for x in metrics(full)][10:]
    gb = [x["grad_norm"] for x in metrics(res)]
    assert ga == gb


def test_recomputation_changes_no_number():
    """train.recompute = moe | full re-runs forwards in the backward: losses, aux losses and grad
    norms are bit-identical to keeping every activation (one process; PP layouts in parity)."""
    keys = ("lm_loss", "aux_loss", "z_loss", "grad_norm", "tokens_per_expert")
    runs = {}
    for mode in ("none", "moe", "full"):
        d = tmpdir()
        run("train", f"--train.run_dir={d}", "--train.steps=8", "--train.micro_batches=2",
            "--moe.capacity_factor=1.0", f"--train.recompute={mode}", "--checkpoint.save_final=false")
        runs[mode] = [{k: x[k] for k in keys} for x in metrics(d)]
    assert runs["moe"] == runs["none"] and runs["full"] == runs["none"], runs


def test_bench_prints_one_json_line():
    out = run("bench", "--warmup", "1", "--steps", "2", "--train.seq_len=32").stdout
    j = json.loads(out.strip().splitlines()[-1])
    for k in ("tokens_per_s", "flops_per_token", "mfu", "peak_gflops"):
        assert j[k] > 0, (k, j)


if __name__ == "__main__":
    main([test_recomputation_changes_no_number, test_tiny_moe_300_steps_halves_the_loss, test_resume_reproduces_the_uninterrupted_losses_exactly,
          test_bench_prints_one_json_line])
