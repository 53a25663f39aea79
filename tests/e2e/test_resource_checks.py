#!/usr/bin/env python3
"""Resources checked before allocating (docs/long-runs.md "Resource checks"): sizes that overflow
or cannot fit are refused by rule (A4), sequences by the model's context (A5, `generate --max-new`
included), a model larger than this node's available memory by the memory check (T3, with its
override), and an allocation failure becomes an error message instead of `terminate`."""
import os
import re
import resource
import subprocess

from e2e_common import BIN, ENV, main, run, tmpdir

LIMIT_S = 60


def foldmoe(*args, preexec_fn=None):
    try:
        return subprocess.run([BIN, *args], capture_output=True, text=True, env=ENV, timeout=LIMIT_S,
                              preexec_fn=preexec_fn)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"foldmoe {' '.join(args)} still ran after {LIMIT_S} s") from None


def expect_refused(args, *fragments):
    d = tmpdir()
    p = foldmoe("train", f"--train.run_dir={d}", "--train.steps=1", *args)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    for f in fragments:
        assert f in p.stderr, (f, p.stderr)
    assert "terminate" not in p.stderr and "bad_alloc" not in p.stderr, p.stderr
    assert os.listdir(d) == [], os.listdir(d)  # refused before anything was written
    return p.stderr


def available_bytes():
    """MemAvailable, lowered to a cgroup v2 limit's headroom (what a container may still use)."""
    with open("/proc/meminfo") as f:
        avail = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            current = int(f.read())
        if limit != "max":
            avail = min(avail, max(0, int(limit) - current))
    except FileNotFoundError:
        pass
    return avail


def test_sizes_of_the_issue_are_refused_by_rule():
    expect_refused(["--model.hidden=100000000"], "config error A4: [model] hidden x heads x head_dim = 100000000 x 4 x "
                   "25000000 = 10000000000000000 elements")
    expect_refused(["--train.seq_len=10000000"], "config error A4: the attention scores of one head",
                   "config error A5: [train] seq_len = 10000000 is longer than the model's context")
    expect_refused(["--moe.num_experts=100000"], "config error A4: [model] layers x [moe] num_experts = 2 x 100000")
    expect_refused(["--model.max_seq_len=32", "--train.seq_len=64"], "config error A5")


# A dense model of ~1.9e12 bytes of weights, gradients and AdamW moments: valid sizes (no A4), far
# more than any machine running the tests has.
HUGE = ["--model.hidden=16384", "--model.heads=32", "--model.kv_heads=8", "--model.ffn=65536",
        "--moe.num_experts=0", "--model.layers=32", "--checkpoint.save_final=false"]


def test_model_larger_than_available_memory_is_refused():
    err = expect_refused(HUGE, "config error T3: the memory estimate is", "--train.skip_memory_check=true")
    m = re.search(r"the memory estimate is ([0-9.]+) GiB per rank but this node has ([0-9.]+) GiB available", err)
    assert m, err
    # 32 layers x (attention 16384 x (2 x 16384 + 2 x 4096) + SwiGLU 3 x 16384 x 65536) parameters, 16 bytes each
    # (weights, gradients, m, v): a lower bound of the estimate, independent of foldmoe's code.
    params = 32 * (16384 * (2 * 16384 + 2 * 4096) + 3 * 16384 * 65536)
    assert float(m.group(1)) * 2**30 >= 16 * params * 0.999, (m.group(1), params)
    assert abs(float(m.group(2)) * 2**30 - available_bytes()) < 0.2 * available_bytes() + 2**30, err


def test_memory_check_counts_the_ranks_of_this_node():
    d = tmpdir()
    p = subprocess.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2", BIN, "train",
                        f"--train.run_dir={d}", "--train.steps=1", *HUGE], capture_output=True, text=True, env=ENV,
                       timeout=LIMIT_S)
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("config error T3") == 1 and " per rank x 2 ranks on this node = " in p.stderr, p.stderr


def test_allocation_failure_is_an_error_message_not_terminate():
    """Past the memory check (skipped), an allocation that fails (here: an address-space limit)
    ends with a message and status 2."""
    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
    d = tmpdir()
    p = foldmoe("train", f"--train.run_dir={d}", "--train.steps=1", "--model.hidden=4096", "--model.heads=32",
                "--model.kv_heads=8", "--model.ffn=16384", "--moe.num_experts=0", "--model.layers=4",
                "--checkpoint.save_final=false", "--train.skip_memory_check=true", preexec_fn=limit_memory)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert "foldmoe: error: out of memory: an allocation failed" in p.stderr, p.stderr
    assert "terminate called" not in p.stderr, p.stderr


def test_generate_is_bounded_by_the_models_context():
    d = tmpdir()
    run("train", f"--train.run_dir={d}", "--train.steps=1", "--train.micro_batch=2", "--train.seq_len=32")
    ckpt = os.path.join(d, "checkpoints", "step-00000001")
    prompt = "add:12+345="
    p = foldmoe("generate", "--checkpoint", ckpt, "--prompt", prompt, "--max-new", "100000000")
    assert p.returncode == 2, (p.returncode, p.stderr)
    # <bos> and one token per character of the prompt.
    tokens = 1 + len(prompt)
    want = f"config error A5: --max-new 100000000 after a prompt of {tokens} tokens is longer than the model's context"
    assert want in p.stderr and f"use --max-new <= {65536 - tokens}" in p.stderr, p.stderr
    p = foldmoe("generate", "--checkpoint", ckpt, "--prompt", prompt, "--max-new", "8", "--temperature", "0")
    assert p.returncode == 0, p.stderr


if __name__ == "__main__":
    main([test_sizes_of_the_issue_are_refused_by_rule,
          test_model_larger_than_available_memory_is_refused,
          test_memory_check_counts_the_ranks_of_this_node,
          test_allocation_failure_is_an_error_message_not_terminate,
          test_generate_is_bounded_by_the_models_context])
