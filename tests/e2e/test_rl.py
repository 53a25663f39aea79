"""End-to-end RL post-training (`foldmoe rl`): a short GRPO run on the lookup task raises the
reward, reruns are bit-identical, checkpoints carry the RL state, bad inputs fail with a fix."""
import json
import os

from e2e_common import main, metrics, pretrained_lookup, run, tmpdir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pretrained():
    return pretrained_lookup(400)


RL = ["--rl.tasks=lookup", "--rl.prompts_per_step=16", "--rl.group_size=8", "--rl.minibatch_prompts=8",
      "--rl.max_response_tokens=8", "--rl.eval_questions=100", "--rl.eval.samples=4", "--rl.optim.lr=1e-4",
      "--rl.optim.warmup_steps=5", "--log.interval=10"]


def rl(run_dir, *extra):
    return run("rl", "--config", os.path.join(ROOT, "configs", "rl-hapo.toml"), "--init", pretrained(),
               f"--train.run_dir={run_dir}", *RL, *extra).stdout


def test_grpo_raises_the_reward():
    d = tmpdir()
    out = rl(d, "--rl.preset=grpo", "--rl.steps=150", "--rl.eval.every=150")
    m = [x for x in metrics(d) if x["type"] == "train"]
    ev = [x for x in metrics(d) if x["type"] == "eval"]
    assert len(m) == 150 and [e["step"] for e in ev] == [0, 150], out
    first = sum(x["reward_mean"] for x in m[:30]) / 30
    last = sum(x["reward_mean"] for x in m[-30:]) / 30
    assert last > first or ev[-1]["accuracy"] > ev[0]["accuracy"] + 0.03, (first, last, ev)
    # The old-policy pass uses the training forward over the same micro-batches: r = 1 exactly.
    assert all(x["first_minibatch_max_abs_log_ratio"] == 0.0 for x in m)
    assert "rl step  150 | reward" in out and "eval step  150 | lookup" in out
    # Router replay (default for MoE): route-flip metrics of docs/rl.md §12.3 every step. The rollout
    # and the old-policy pass run the same forward on the same weights, so flips and log-prob gaps
    # are round-off sized (KV-cache decoding sums in another order).
    for x in m:
        flips = x["route_flip_rate"]
        assert len(flips) == 2 and all(0.0 <= f <= 0.02 for f in flips), x
        assert max(flips) <= x["route_flip_any_frac"] <= min(1.0, sum(flips) + 1e-12), x
        assert 0.0 <= x["rollout_vs_old_abs_logprob_mean"] <= x["rollout_vs_old_abs_logprob_max"] < 1e-3, x


def test_same_seed_is_bit_identical_and_checkpoints_carry_rl_state():
    a, b = tmpdir(), tmpdir()
    for d in (a, b):
        rl(d, "--rl.preset=hapo", "--rl.steps=6", "--rl.eval.every=3")
    drop = ("rollout_tokens_per_s", "train_tokens_per_s", "step_time_s", "time_s", "peak_rss_mib")
    ma = [{k: v for k, v in x.items() if k not in drop} for x in metrics(a)]
    mb = [{k: v for k, v in x.items() if k not in drop} for x in metrics(b)]
    assert ma == mb
    ca, cb = (os.path.join(d, "checkpoints", "step-00000006") for d in (a, b))
    for f in ("model.safetensors", "optimizer.safetensors"):
        with open(os.path.join(ca, f), "rb") as fa, open(os.path.join(cb, f), "rb") as fb:
            assert fa.read() == fb.read(), f
    man = json.load(open(os.path.join(ca, "manifest.json")))
    extra = man["extra"]
    assert extra["rl_step"] == 6 and extra["ats_stats"]["count"] > 0 and extra["preset"] == "hapo", extra
    # HAPO's adaptive temperature kicks in from step 2 (statistics of step 1).
    m = [x for x in metrics(a) if x["type"] == "train"]
    assert m[0]["temperature_min"] == m[0]["temperature_max"] == 1.0
    assert m[1]["temperature_min"] < 1.0 < m[1]["temperature_max"]
    # A different seed gives a different run.
    c = tmpdir()
    rl(c, "--rl.preset=hapo", "--rl.steps=2", "--rl.seed=2", "--rl.eval.before_train=false", "--rl.eval.every=100")
    assert metrics(c)[0]["reward_mean"] != ma[1]["reward_mean"] or metrics(c)[0]["entropy_mean"] != ma[1]["entropy_mean"]


def test_dapo_dynamic_sampling_and_resume():
    d = tmpdir()
    rl(d, "--rl.preset=dapo", "--rl.steps=3", "--rl.eval.before_train=false", "--rl.eval.every=100",
       "--rl.dynamic_sampling.gen_prompts_per_round=16", "--rl.dynamic_sampling.max_rounds=0",
       "--rl.prompts_per_step=8")
    m = [x for x in metrics(d) if x["type"] == "train"]
    assert all(x["ds_rounds"] >= 1 for x in m) and all(x["batch_accuracy"] > 0 for x in m), m
    # Resume from the RL checkpoint continues at step 4.
    ck = os.path.join(d, "checkpoints", "step-00000003")
    out = rl(d, "--rl.preset=dapo", "--rl.steps=4", "--rl.eval.before_train=false", "--rl.eval.every=100",
             "--rl.dynamic_sampling.gen_prompts_per_round=16", "--rl.dynamic_sampling.max_rounds=0",
             "--rl.prompts_per_step=8", f"--checkpoint.load={ck}")
    assert "rl step    4 |" in out, out


def test_user_errors():
    d = tmpdir()
    bad = os.path.join(d, "bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"prompt": "1+1", "answer": "2"}\n{"prompt": "2+2"}\n')
    p = run("rl", "--init", pretrained(), f"--rl.data={bad}", check=False)
    assert p.returncode != 0 and f"{bad}:2" in p.stderr and "missing key \"answer\"" in p.stderr and "fix:" in p.stderr, p.stderr
    p = run("rl", "--init", pretrained(), "--rl.prompts_per_step=10", "--rl.minibatch_prompts=4", check=False)
    assert p.returncode == 2 and "config error R1:" in p.stderr and "minibatch_prompts = 4" in p.stderr, p.stderr
    p = run("rl", "--init", pretrained(), "--rl.loss.aggregation=sum", check=False)
    assert p.returncode == 2 and "[rl] loss.aggregation = \"sum\" is not one of token-mean" in p.stderr, p.stderr


def test_kl_to_reference_and_entropy_bonus():
    """rl.loss.kl_coef pulls the policy back to the frozen rl.reference (a stronger coefficient ends
    nearer to it); rl.loss.entropy_coef keeps the policy's entropy up (docs/rl.md §3.7)."""
    p = run("rl", "--init", pretrained(), "--rl.loss.kl_coef=0.1", check=False)
    assert p.returncode == 2 and "config error R2: [rl] loss.kl_coef" in p.stderr and "rl.reference" in p.stderr, p.stderr
    p = run("rl", "--init", pretrained(), "--rl.loss.entropy_coef=-1", check=False)
    assert p.returncode == 2 and "config error V1: [rl] loss.entropy_coef" in p.stderr and "fix:" in p.stderr, p.stderr
    fast = ["--rl.preset=grpo", "--rl.steps=6", "--rl.eval.before_train=false", "--rl.eval.every=100",
            "--rl.optim.lr=2e-3", "--rl.optim.warmup_steps=1"]
    kl = {}
    for coef in (0.01, 3.0):
        d = tmpdir()
        rl(d, *fast, f"--rl.loss.kl_coef={coef}", f"--rl.reference={pretrained()}")
        m = [x for x in metrics(d) if x["type"] == "train"]
        # Step 1's first mini-batch sees the reference weights (KL 0); the second one does not.
        assert all(x["kl_mean"] > 0 for x in m), m
        kl[coef] = m[-1]["kl_mean"]
    assert kl[3.0] < 0.5 * kl[0.01], kl
    ent = {}
    for coef in (0.0, 0.5):
        d = tmpdir()
        rl(d, *fast, f"--rl.loss.entropy_coef={coef}")
        m = [x for x in metrics(d) if x["type"] == "train"]
        assert all(x["kl_mean"] == 0 for x in m)  # no reference loaded
        ent[coef] = m[-1]["entropy_mean"]
    assert ent[0.5] > 1.2 * ent[0.0], ent


if __name__ == "__main__":
    main([test_grpo_raises_the_reward, test_same_seed_is_bit_identical_and_checkpoints_carry_rl_state,
          test_dapo_dynamic_sampling_and_resume, test_user_errors, test_kl_to_reference_and_entropy_bonus])
