"""`foldmoe rl` under mpirun (docs/rl.md §2, DP): two ranks as DP2 and as DP2 with the experts split EP2.
Rollouts are split over the DP ranks by prompt. The same seed and layout give bit-identical runs;
the first step's rollouts do not depend on the layout (the sampling streams are keyed by prompt
and sample, not by rank); the RL checkpoint is written in logical form and resumes in one process."""
import os
import subprocess

from e2e_common import BIN, ENV, main, metrics, pretrained_lookup, run, tmpdir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MPI = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "mpi_yield_when_idle", "1", "--mca", "btl",
       "self,vader", "-np", "2"]
# Timings differ between runs; everything else must not.
DROP = ("rollout_tokens_per_s", "train_tokens_per_s", "step_time_s", "time_s", "peak_rss_mib")


def pretrained():
    return pretrained_lookup(300)


RL = ["--rl.tasks=lookup", "--rl.prompts_per_step=8", "--rl.group_size=4", "--rl.minibatch_prompts=4",
      "--rl.max_response_tokens=8", "--rl.eval_questions=20", "--rl.eval.samples=2", "--rl.eval.every=2",
      "--rl.optim.lr=1e-4", "--rl.micro_batch=8", "--log.interval=1"]


def rl(np_, run_dir, *extra):
    cmd = [BIN, "rl", "--config", os.path.join(ROOT, "configs", "rl-hapo.toml"), "--init", pretrained(),
           f"--train.run_dir={run_dir}", *RL, *extra]
    if np_ > 1:
        cmd = MPI + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, f"{' '.join(cmd)}\n{p.stdout}\n{p.stderr}"
    return [{k: v for k, v in x.items() if k not in DROP} for x in metrics(run_dir)]


def sane(m):
    train = [x for x in m if x["type"] == "train"]
    ev = [x for x in m if x["type"] == "eval"]
    assert [x["step"] for x in train] == [1, 2, 3] and [x["step"] for x in ev] == [0, 2, 3], m
    for x in train:
        assert -1.0 <= x["reward_mean"] <= 1.0 and 0.0 <= x["accuracy"] <= 1.0, x
        assert 0 < x["updates"] == 2 and x["skipped_updates"] == 0 and x["grad_norm"] > 0, x
        # The old-policy pass reuses the update's micro-batches on the same rank: r = 1 exactly.
        assert x["first_minibatch_max_abs_log_ratio"] == 0.0, x
    assert all(0.0 <= x["accuracy"] <= 1.0 for x in ev), ev
    # The pretrained model solves some lookups but not all: the reward is informative.
    assert 0.0 < train[0]["accuracy"] < 1.0, train[0]


def test_dp2_and_dp2_ep2_are_bit_identical_and_sane():
    single = rl(1, tmpdir(), "--rl.steps=3")
    sane(single)
    for layout in ([], ["--parallel.ep=2"]):
        a, b = tmpdir(), tmpdir()
        ma = rl(2, a, "--rl.steps=3", *layout)
        mb = rl(2, b, "--rl.steps=3", *layout)
        assert ma == mb, (layout, ma, mb)
        sane(ma)
        # Step 1 samples from the initial weights in every layout: the same responses and rewards;
        # the step-0 evaluation too. Later steps may differ by fp32 round-off of the reductions.
        t1, s1 = ma[1], single[1]
        for k in ("reward_mean", "accuracy", "response_length_mean", "identical_group_rate", "truncation_rate"):
            assert t1[k] == s1[k], (layout, k, t1[k], s1[k])
        assert ma[0] == single[0], (layout, ma[0], single[0])
        assert abs(t1["entropy_mean"] - s1["entropy_mean"]) <= 1e-5 * abs(s1["entropy_mean"]) + 1e-6, layout
        assert abs(t1["loss"] - s1["loss"]) <= 1e-4 * abs(s1["loss"]) + 1e-6, (layout, t1["loss"], s1["loss"])


def test_ep2_checkpoint_is_logical_and_resumes_in_one_process():
    d = tmpdir()
    rl(2, d, "--rl.steps=2", "--parallel.ep=2")
    ck = os.path.join(d, "checkpoints", "step-00000002")
    assert os.path.exists(os.path.join(ck, "COMPLETE"))
    # One process loads the EP2 checkpoint (all experts present) and continues to step 3.
    m = rl(1, tmpdir(), "--rl.steps=3", f"--checkpoint.load={ck}")
    assert [x["step"] for x in m if x["type"] == "train"] == [3], m
    # `foldmoe eval` reads it as an ordinary checkpoint.
    out = run("eval", "--checkpoint", ck, "--samples", "20").stdout
    assert '"accuracy"' in out, out


def test_old_mode_replay_with_two_epochs_under_dp2_ep2():
    """Router replay `old` records routes in the old-policy pass on the rank that computed each
    response; the second epoch trains responses on other ranks, so the records are shared."""
    flags = ["--rl.steps=2", "--parallel.ep=2", "--rl.router_replay.mode=old", "--rl.ppo_epochs=2",
             "--rl.eval.before_train=false"]
    ma, mb = rl(2, tmpdir(), *flags), rl(2, tmpdir(), *flags)
    assert ma == mb
    train = [x for x in ma if x["type"] == "train"]
    assert [x["step"] for x in train] == [1, 2], ma
    for x in train:
        assert x["updates"] == 4 and x["skipped_updates"] == 0 and x["first_minibatch_max_abs_log_ratio"] == 0.0, x
    # Same responses as one process at step 1 (sampling does not depend on the layout).
    one = [x for x in rl(1, tmpdir(), *flags[:1], *flags[2:]) if x["type"] == "train"]
    assert train[0]["reward_mean"] == one[0]["reward_mean"] and train[0]["accuracy"] == one[0]["accuracy"]


if __name__ == "__main__":
    main([test_dp2_and_dp2_ep2_are_bit_identical_and_sane, test_ep2_checkpoint_is_logical_and_resumes_in_one_process,
          test_old_mode_replay_with_two_epochs_under_dp2_ep2])
