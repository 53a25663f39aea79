#!/usr/bin/env python3
"""Asynchronous checkpointing (docs/long-runs.md "Asynchronous checkpoints"): with
`--checkpoint.async=true` the checkpoints are byte for byte those of a synchronous run (the tensor
files, compared with the Python safetensors reader too) and the metrics rows are the same; a run
resumed from an async checkpoint reproduces the uninterrupted rows; a failed background write (the
FOLDMOE_FAULT_INJECT seam, and a real write failure: a file-size limit on rank 0) stops the run with
status 2 and rule C5 naming the checkpoint and the cause, in one process and under a 2-rank mpirun,
within the subprocess timeout; retention with async never deletes the last complete checkpoint
before a newer one is complete; a stop signal waits for the pending write."""
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
from safetensors.numpy import load_file

from e2e_common import BIN, ENV, ROOT, main, metrics, pretrained_lookup, tmpdir

LIMIT_S = 120  # a job still running after this hangs
MPI = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "mpi_yield_when_idle", "1"]
SMALL = ["--train.micro_batch=2", "--train.seq_len=32", "--log.interval=1", "--model.hidden=32", "--model.ffn=64",
         "--moe.ffn_hidden_size=32"]
# Timing and memory fields differ between any two runs (async holds a snapshot on rank 0 while it
# writes); everything else in a row must be identical.
TIMING = re.compile(r"time|per_s|mfu|seconds|comm_|peak_rss")


def train(run_dir, *flags, np_=1, env=None, preexec_fn=None, check=True):
    cmd = [BIN, "train", f"--train.run_dir={run_dir}", *SMALL, *flags]
    if np_ > 1:
        cmd = MPI + ["-np", str(np_)] + cmd
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env or ENV, timeout=LIMIT_S,
                           preexec_fn=preexec_fn)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{' '.join(cmd)} still ran after {LIMIT_S} s: a hang\n{e.stderr}") from None
    if check:
        assert p.returncode == 0, (p.returncode, p.stdout[-3000:], p.stderr[-3000:])
    return p


def rows(run_dir):
    return [{k: v for k, v in r.items() if not TIMING.search(k)} for r in metrics(run_dir)]


def ckpt(run_dir, step):
    return os.path.join(run_dir, "checkpoints", f"step-{step:08d}")


def names(run_dir):
    root = os.path.join(run_dir, "checkpoints")
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


def complete(path):
    return os.path.exists(os.path.join(path, "COMPLETE"))


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def test_async_checkpoints_are_byte_identical_to_sync_ones():
    for np_ in (1, 2):
        sync, asyn = tmpdir(), tmpdir()
        train(sync, "--train.steps=8", "--checkpoint.interval=2", np_=np_)
        p = train(asyn, "--train.steps=8", "--checkpoint.interval=2", "--checkpoint.async=true", np_=np_)
        assert names(sync) == names(asyn) == [f"step-{s:08d}" for s in (2, 4, 6, 8)], (names(sync), names(asyn))
        for s in (2, 4, 6, 8):
            assert complete(ckpt(asyn, s))
            for f in ("model.safetensors", "optimizer.safetensors"):
                a, b = os.path.join(ckpt(sync, s), f), os.path.join(ckpt(asyn, s), f)
                assert file_bytes(a) == file_bytes(b), (np_, s, f)
                ta, tb = load_file(a), load_file(b)  # the independent reader sees the same tensors
                assert ta.keys() == tb.keys() and all(np.array_equal(ta[k], tb[k]) for k in ta), (np_, s, f)
        # The weights really move between saves (a snapshot taken late would show here).
        assert file_bytes(os.path.join(ckpt(asyn, 2), "model.safetensors")) != \
            file_bytes(os.path.join(ckpt(asyn, 4), "model.safetensors"))
        assert rows(sync) == rows(asyn)
        assert "saved checkpoint" in p.stdout and ckpt(asyn, 8) in p.stdout, p.stdout


RL = ["rl", "--config", os.path.join(ROOT, "configs", "rl-hapo.toml"), "--rl.tasks=lookup", "--rl.prompts_per_step=8",
      "--rl.group_size=4", "--rl.minibatch_prompts=4", "--rl.max_response_tokens=8", "--rl.eval_questions=20",
      "--rl.eval.samples=1", "--rl.eval.before_train=false", "--rl.eval.every=100", "--rl.steps=4",
      "--rl.checkpoint_every=2", "--log.interval=1"]


def test_rl_async_checkpoints_match_sync_ones():
    init = pretrained_lookup(20)
    sync, asyn = tmpdir(), tmpdir()
    for d, flag in ((sync, "false"), (asyn, "true")):
        p = subprocess.run([BIN, *RL, "--init", init, f"--train.run_dir={d}", f"--checkpoint.async={flag}"],
                           capture_output=True, text=True, env=ENV, timeout=LIMIT_S)
        assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
    assert names(sync) == names(asyn) == ["step-00000002", "step-00000004"], (names(sync), names(asyn))
    for s in (2, 4):
        for f in ("model.safetensors", "optimizer.safetensors"):
            assert file_bytes(os.path.join(ckpt(sync, s), f)) == file_bytes(os.path.join(ckpt(asyn, s), f)), (s, f)
    assert rows(sync) == rows(asyn)


def test_resume_from_an_async_checkpoint_reproduces_the_uninterrupted_run():
    full = tmpdir()
    train(full, "--train.steps=10", "--checkpoint.interval=2", "--checkpoint.async=true")
    d = tmpdir()
    train(d, "--train.steps=5", "--checkpoint.interval=2", "--checkpoint.async=true", "--checkpoint.save_final=false")
    assert names(d) == ["step-00000002", "step-00000004"], names(d)  # the last interval write was waited for
    p = train(d, "--train.steps=10", "--checkpoint.interval=2", "--checkpoint.async=true", "--checkpoint.load=auto")
    assert "steps 5..10" in p.stdout, p.stdout
    assert rows(d) == rows(full)


def expect_c5(p, step, cause):
    assert p.returncode == 2, (p.returncode, p.stdout[-2000:], p.stderr[-3000:])
    assert "checkpoint error C5: the background write of checkpoint" in p.stderr, p.stderr[-3000:]
    assert ckpt_name(step) in p.stderr and cause in p.stderr, p.stderr[-3000:]
    assert p.stderr.count("foldmoe: error") == 1, p.stderr[-3000:]


def ckpt_name(step):
    return f"step-{step:08d}"


def test_failed_background_write_stops_the_run_with_the_cause():
    for np_ in (1, 2):
        d = tmpdir()
        env = dict(ENV, FOLDMOE_FAULT_INJECT="rank=0,phase=write,step=4")
        p = train(d, "--train.steps=12", "--checkpoint.interval=4", "--checkpoint.async=true", np_=np_, env=env,
                  check=False)
        expect_c5(p, 4, "injected fault on rank 0 in phase write at step 4")  # and within LIMIT_S (no hang)
        # Reported after the next step (its row is written), at the latest when the next save waits
        # for the write (step 8).
        steps = [r["step"] for r in metrics(d)]
        assert 5 <= steps[-1] <= 8, steps
        assert not os.path.exists(ckpt(d, 4)) and not os.path.exists(ckpt(d, 8)), names(d)


def test_the_write_fault_without_async_fails_the_save_itself():
    d = tmpdir()
    env = dict(ENV, FOLDMOE_FAULT_INJECT="rank=0,phase=write,step=4")
    p = train(d, "--train.steps=12", "--checkpoint.interval=4", env=env, check=False)
    assert p.returncode == 2 and "injected fault on rank 0 in phase write at step 4" in p.stderr, p.stderr[-3000:]
    assert "C5" not in p.stderr, p.stderr[-3000:]  # not a background write
    assert [r["step"] for r in metrics(d)][-1] == 4 and names(d) == [], names(d)


# A file-size limit on rank 0 only (RLIMIT_FSIZE, SIGXFSZ ignored): its checkpoint files cannot be
# written (EFBIG, "File too large"), the way a full disk fails, while metrics.jsonl stays small.
RANK0_FILE_LIMIT = """
import os, resource, signal, sys
if os.environ.get("OMPI_COMM_WORLD_RANK", "0") == "0":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_a_real_write_failure_in_the_background_stops_the_run():
    for np_ in (1, 2):
        d = tmpdir()
        cmd = [sys.executable, "-c", RANK0_FILE_LIMIT, "40000", BIN, "train", f"--train.run_dir={d}", *SMALL,
               "--train.steps=8", "--checkpoint.interval=2", "--checkpoint.async=true"]
        if np_ > 1:  # the shared-memory transport's files would count against the limit
            cmd = MPI + ["--mca", "btl", "self,tcp", "-np", str(np_)] + cmd
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=LIMIT_S)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"still ran after {LIMIT_S} s: a hang\n{e.stderr}") from None
        expect_c5(p, 2, "File too large")
        assert not any(re.fullmatch(r"step-\d{8}", n) for n in names(d)), names(d)


def test_keep_last_with_async_never_drops_the_last_complete_checkpoint():
    # A healthy run keeps exactly the newest.
    d = tmpdir()
    p = train(d, "--train.steps=10", "--checkpoint.interval=2", "--checkpoint.keep_last=1", "--checkpoint.async=true")
    assert names(d) == ["step-00000010"] and complete(ckpt(d, 10)), names(d)
    assert "checkpoint.keep_last = 1: removed" in p.stdout, p.stdout
    # The write of step 6 fails: step 4 (complete) must still be there — it is pruned only once a
    # newer checkpoint is complete — and the run continues from it.
    d = tmpdir()
    env = dict(ENV, FOLDMOE_FAULT_INJECT="rank=0,phase=write,step=6")
    p = train(d, "--train.steps=10", "--checkpoint.interval=2", "--checkpoint.keep_last=1", "--checkpoint.async=true",
              env=env, check=False)
    expect_c5(p, 6, "injected fault")
    assert [n for n in names(d) if re.fullmatch(r"step-\d{8}", n)] == ["step-00000004"], names(d)
    assert complete(ckpt(d, 4))
    p = train(d, "--train.steps=10", "--checkpoint.interval=2", "--checkpoint.keep_last=1", "--checkpoint.async=true",
              "--checkpoint.load=auto")
    assert "steps 5..10" in p.stdout and names(d) == ["step-00000010"], (p.stdout, names(d))


def test_a_stop_signal_waits_for_the_pending_write():
    d = tmpdir()
    cmd = [BIN, "train", f"--train.run_dir={d}", *SMALL, "--train.steps=400", "--checkpoint.interval=1",
           "--checkpoint.async=true"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    deadline = time.time() + LIMIT_S
    while not os.path.exists(os.path.join(d, "metrics.jsonl")) or len(metrics(d)) < 5:
        assert p.poll() is None and time.time() < deadline, p.stdout.read() if p.poll() is not None else "slow"
        time.sleep(0.005)
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=LIMIT_S)
    m = re.search(r"saved checkpoint at step (\d+) after signal SIGTERM", out)
    assert p.returncode == 0 and m, (p.returncode, out[-3000:])
    step = int(m.group(1))
    assert complete(ckpt(d, step)), names(d)
    # Every checkpoint of the run is complete when the process has exited: nothing was cut short.
    assert all(re.fullmatch(r"step-\d{8}", n) and complete(os.path.join(d, "checkpoints", n)) for n in names(d))


def test_second_signal_during_a_pending_write_leaves_only_a_tmp_directory():
    flags = ["--train.steps=60", "--checkpoint.interval=1", "--checkpoint.async=true"]
    full = tmpdir()
    train(full, *flags)
    d = tmpdir()
    cmd = [BIN, "train", f"--train.run_dir={d}", *SMALL, *flags]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    deadline = time.time() + LIMIT_S
    while not os.path.exists(os.path.join(d, "metrics.jsonl")) or len(metrics(d)) < 5:
        assert p.poll() is None and time.time() < deadline, "ended or no progress"
        time.sleep(0.002)
    # A save every step: a background write is (almost always) in flight when "now" arrives.
    p.send_signal(signal.SIGTERM)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=LIMIT_S)
    assert p.returncode in (128 + signal.SIGINT, 128 + signal.SIGTERM), (p.returncode, out[-3000:])
    assert "second stop signal, exiting now without saving" in out, out[-3000:]
    for n in names(d):  # under a real name only complete checkpoints; otherwise a .tmp-PID leftover
        assert (re.fullmatch(r"step-\d{8}", n) and complete(os.path.join(d, "checkpoints", n))) or \
            re.fullmatch(r"step-\d{8}\.tmp-\d+", n), names(d)
    p = train(d, *flags, "--checkpoint.load=auto")
    assert all(re.fullmatch(r"step-\d{8}", n) for n in names(d)), names(d)
    assert rows(d) == rows(full)


if __name__ == "__main__":
    main([test_async_checkpoints_are_byte_identical_to_sync_ones,
          test_rl_async_checkpoints_match_sync_ones,
          test_resume_from_an_async_checkpoint_reproduces_the_uninterrupted_run,
          test_failed_background_write_stops_the_run_with_the_cause,
          test_the_write_fault_without_async_fails_the_save_itself,
          test_a_real_write_failure_in_the_background_stops_the_run,
          test_keep_last_with_async_never_drops_the_last_complete_checkpoint,
          test_a_stop_signal_waits_for_the_pending_write,
          test_second_signal_during_a_pending_write_leaves_only_a_tmp_directory])
