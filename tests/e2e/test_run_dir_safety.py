"""A run never loses or corrupts what a user already has (docs/run-directory.md): a start that fails
leaves the run directory as it was, a used run directory is resumed or replaced only when asked, a
resume reads as one run, every write failure is an error naming the file and the cause, bad paths
are user errors before any step; the start line counts parameters and the run ends with a summary."""
import hashlib
import json
import os
import re
import resource
import signal
import subprocess
import tomllib

from e2e_common import BIN, ENV, ROOT, main, metrics, pretrained_lookup, run, tmpdir

SMALL = ["--train.steps=4", "--train.micro_batch=2", "--train.seq_len=32", "--log.interval=1"]


def digest(path):
    """sha256 of a file, or of every file under a directory (names included)."""
    h = hashlib.sha256()
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    for root, _, files in sorted(os.walk(path)):
        for f in sorted(files):
            with open(os.path.join(root, f), "rb") as fh:
                h.update(os.path.relpath(os.path.join(root, f), path).encode() + fh.read())
    return h.hexdigest()


def steps_of(run_dir, kind=None):
    return [x["step"] for x in metrics(run_dir) if kind is None or x.get("type") == kind]


def assert_user_error(p, *needles):
    assert p.returncode == 2, f"exit {p.returncode}, expected 2\n{p.stdout}\n{p.stderr}"
    for n in needles:
        assert n in p.stderr, f"{n!r} not in stderr:\n{p.stderr}"
    assert "fix" in p.stderr, p.stderr


def used_run_dir(*extra):
    """A 4-step run with checkpoints at steps 2 and 4."""
    d = tmpdir()
    run("train", f"--train.run_dir={d}", *SMALL, "--checkpoint.interval=2", *extra)
    return d


# ---- a start that fails validation touches nothing ----

RL = ["--rl.preset=grpo", "--rl.prompts_per_step=4", "--rl.group_size=4", "--rl.minibatch_prompts=4",
      "--rl.max_response_tokens=6", "--rl.eval.before_train=false", "--rl.eval.every=100", "--rl.eval_questions=4",
      "--rl.eval.samples=1", "--rl.micro_batch=16", "--log.interval=1"]


def rl(run_dir, *extra, check=True):
    return run("rl", "--config", os.path.join(ROOT, "configs", "rl-hapo.toml"), "--init", pretrained_lookup(20),
               f"--train.run_dir={run_dir}", *RL, *extra, check=check)


def test_rl_start_with_a_bad_prompt_leaves_the_run_dir_alone():
    d = tmpdir()
    rl(d, "--rl.tasks=lookup", "--rl.steps=2")
    assert steps_of(d, "train") == [1, 2]
    before = {f: digest(os.path.join(d, f)) for f in ("metrics.jsonl", "config.toml", "checkpoints")}
    bad = os.path.join(tmpdir(), "bad.jsonl")
    with open(bad, "w", encoding="utf-8") as f:
        f.write('{"prompt": "What is 2+3?", "answer": "5"}\n{"prompt": "Was ist 2\u00b73?", "answer": "6"}\n')
    # The same command again continues the run from its latest checkpoint: all steps are done, so
    # nothing runs and nothing is written.
    again = rl(d, "--rl.tasks=lookup", "--rl.steps=2")
    assert "continuing from " + os.path.join(d, "checkpoints", "step-00000002") in again.stdout, again.stdout
    assert "no steps to run" in again.stdout, again.stdout
    # (config.toml now records the checkpoint it continued from.)
    assert {f: digest(os.path.join(d, f)) for f in ("metrics.jsonl", "checkpoints")} == \
        {f: before[f] for f in ("metrics.jsonl", "checkpoints")}
    before = {f: digest(os.path.join(d, f)) for f in ("metrics.jsonl", "config.toml", "checkpoints")}
    ck = os.path.join(d, "checkpoints", "step-00000002")
    # Resuming the run with a prompt outside the vocabulary, and replacing it (--overwrite): both
    # refused before any file of the run directory is touched.
    for how in ([f"--checkpoint.load={ck}"], ["--overwrite"]):
        p = rl(d, f"--rl.data={bad}", "--rl.steps=3", *how, check=False)
        assert_user_error(p, f"{bad}:2", "prompt")
        after = {f: digest(os.path.join(d, f)) for f in before}
        assert after == before, (how, before, after)


# ---- a used run directory continues (its checkpoints) or is replaced only when asked ----

def test_used_run_dir_continues_from_its_checkpoints_and_is_replaced_only_on_overwrite():
    d = used_run_dir()
    before = {f: digest(os.path.join(d, f)) for f in ("metrics.jsonl", "config.toml", "checkpoints")}
    first = metrics(d)
    # The same command again: the run has checkpoints, so it continues from the latest (step 4, the
    # last step): nothing to run, nothing written.
    p = run("train", f"--train.run_dir={d}", *SMALL)
    assert "continuing from " + os.path.join(d, "checkpoints", "step-00000004") in p.stdout, p.stdout
    # (config.toml now records the checkpoint it continued from.)
    assert {f: digest(os.path.join(d, f)) for f in ("metrics.jsonl", "checkpoints")} == \
        {f: before[f] for f in ("metrics.jsonl", "checkpoints")}
    # More steps continue the run exactly where it stopped (as --checkpoint.load=auto would).
    run("train", f"--train.run_dir={d}", *SMALL, "--train.steps=6")
    assert steps_of(d) == [1, 2, 3, 4, 5, 6]
    assert metrics(d)[:4] == first
    # A run directory with metrics but no complete checkpoint is still refused.
    nock = tmpdir()
    run("train", f"--train.run_dir={nock}", *SMALL, "--checkpoint.save_final=false")
    before_nock = {f: digest(os.path.join(nock, f)) for f in ("metrics.jsonl", "config.toml")}
    p = run("train", f"--train.run_dir={nock}", *SMALL, check=False)
    assert_user_error(p, nock, "--checkpoint.load=", "--overwrite", "new --train.run_dir")
    assert {f: digest(os.path.join(nock, f)) for f in before_nock} == before_nock
    # Checkpoints in a separate checkpoint.dir are the run's too: a new run_dir continues from them.
    ck_only, run_dir = tmpdir(), tmpdir()
    run("train", f"--train.run_dir={tmpdir()}", *SMALL, f"--checkpoint.dir={ck_only}")
    p = run("train", f"--train.run_dir={run_dir}", *SMALL, f"--checkpoint.dir={ck_only}", "--train.steps=5")
    assert "continuing from " + os.path.join(ck_only, "step-00000004") in p.stdout, p.stdout
    assert steps_of(run_dir) == [5]
    # --overwrite replaces the earlier run: its metrics and its step-NNNNNNNN checkpoints.
    keep = os.path.join(d, "checkpoints", "notes.txt")
    with open(keep, "w") as f:
        f.write("mine")
    run("train", f"--train.run_dir={d}", *SMALL, "--train.steps=3", "--overwrite")
    assert steps_of(d) == [1, 2, 3]
    assert sorted(os.listdir(os.path.join(d, "checkpoints"))) == ["notes.txt", "step-00000003"]
    assert open(keep).read() == "mine"


def test_resume_truncates_metrics_to_the_resumed_step():
    d = used_run_dir()
    first = metrics(d)
    run("train", f"--train.run_dir={d}", *SMALL, f"--checkpoint.load={d}/checkpoints/step-00000002")
    resumed = metrics(d)
    assert [x["step"] for x in resumed] == [1, 2, 3, 4], [x["step"] for x in resumed]
    assert resumed[:2] == first[:2]
    # Resuming is exact, so steps 3 and 4 have the same losses again.
    assert [x["lm_loss"] for x in resumed] == [x["lm_loss"] for x in first]
    # A torn last row (a crash mid-write) is dropped, and the run continues after step 4.
    with open(os.path.join(d, "metrics.jsonl"), "a") as f:
        f.write('{"step": 5, "lm_loss": 1.2')
    run("train", f"--train.run_dir={d}", *SMALL, "--train.steps=5", f"--checkpoint.load={d}/checkpoints/step-00000004")
    assert steps_of(d) == [1, 2, 3, 4, 5]


def test_resuming_another_runs_checkpoint_into_a_used_run_dir_is_refused_until_overwrite():
    d, other = used_run_dir(), used_run_dir()
    before = {f: digest(os.path.join(d, f)) for f in ("metrics.jsonl", "config.toml", "checkpoints")}
    load = f"--checkpoint.load={other}/checkpoints/step-00000002"
    p = run("train", f"--train.run_dir={d}", *SMALL, load, check=False)
    assert_user_error(p, d, "is not one of its checkpoints", "--overwrite")
    assert {f: digest(os.path.join(d, f)) for f in before} == before
    run("train", f"--train.run_dir={d}", *SMALL, load, "--overwrite")
    assert steps_of(d) == [3, 4]
    assert sorted(os.listdir(os.path.join(d, "checkpoints"))) == ["step-00000004"]


def test_rl_resume_truncates_metrics_to_the_resumed_step():
    d = tmpdir()
    rl(d, "--rl.tasks=lookup", "--rl.steps=3", "--rl.checkpoint_every=1", "--rl.eval.every=2")
    assert [(x["type"], x["step"]) for x in metrics(d)] == [("train", 1), ("train", 2), ("eval", 2), ("train", 3),
                                                           ("eval", 3)]
    rl(d, "--rl.tasks=lookup", "--rl.steps=3", "--rl.checkpoint_every=1", "--rl.eval.every=2",
       f"--checkpoint.load={d}/checkpoints/step-00000001")
    assert [(x["type"], x["step"]) for x in metrics(d)] == [("train", 1), ("train", 2), ("eval", 2), ("train", 3),
                                                           ("eval", 3)]


# ---- write failures are errors with the path and the cause ----

def run_with_file_size_limit(limit, *args):
    """foldmoe ARGS with RLIMIT_FSIZE = limit bytes: a write past it fails with EFBIG, the same
    failure path as a full disk (SIGXFSZ ignored, so the write returns the error)."""
    def limit_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=ENV, preexec_fn=limit_files)


def test_metrics_write_failure_is_an_error_and_leaves_whole_rows():
    d = tmpdir()
    p = run_with_file_size_limit(20000, "train", f"--train.run_dir={d}", *SMALL, "--train.steps=60",
                                 "--checkpoint.save_final=false")
    path = os.path.join(d, "metrics.jsonl")
    assert p.returncode == 2, (p.returncode, p.stdout[-2000:], p.stderr)
    assert path in p.stderr and "File too large" in p.stderr, p.stderr
    size = os.path.getsize(path)
    assert 0 < size <= 20000
    with open(path) as f:
        text = f.read()
    assert text.endswith("\n")  # the torn row was cut off again
    rows = [json.loads(line) for line in text.splitlines()]
    assert [x["step"] for x in rows] == list(range(1, len(rows) + 1)) and len(rows) < 60


def test_checkpoint_write_failure_is_an_error():
    d = tmpdir()
    p = run_with_file_size_limit(40000, "train", f"--train.run_dir={d}", *SMALL, "--train.steps=1")
    assert p.returncode == 2, (p.returncode, p.stdout[-2000:], p.stderr)
    assert os.path.join(d, "checkpoints", "step-00000001") in p.stderr, p.stderr
    assert "File too large" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(d, "checkpoints", "step-00000001"))


def test_config_write_failure_is_an_error():
    d = tmpdir()
    p = run_with_file_size_limit(100, "train", f"--train.run_dir={d}", *SMALL)
    assert p.returncode == 2, (p.returncode, p.stdout[-2000:], p.stderr)
    assert os.path.join(d, "config.toml") in p.stderr and "File too large" in p.stderr, p.stderr
    assert "step     1" not in p.stdout


# ---- bad paths are user errors before any step ----

def test_bad_run_and_checkpoint_paths_fail_before_training():
    a_file = os.path.join(tmpdir(), "a-file")
    with open(a_file, "w") as f:
        f.write("not a directory")
    cannot_create = "/sys/foldmoe-e2e-run"  # sysfs: no one may create a directory there
    for key, value, needle in (("train.run_dir", a_file, "is a file"),
                               ("train.run_dir", os.path.join(a_file, "run"), "is a file"),
                               ("train.run_dir", cannot_create, cannot_create),
                               ("checkpoint.dir", os.path.join(a_file, "ckpt"), "is a file"),
                               ("checkpoint.dir", cannot_create, cannot_create)):
        run_dir = tmpdir() if key == "checkpoint.dir" else value
        p = run("train", f"--train.run_dir={run_dir}", f"--{key}={value}", *SMALL, check=False)
        assert_user_error(p, key, value, needle)
        assert "step     1" not in p.stdout, (key, value, p.stdout)
        if key == "checkpoint.dir":
            assert os.listdir(run_dir) == [], os.listdir(run_dir)  # nothing written
    with open(a_file) as f:
        assert f.read() == "not a directory"


# ---- the start line and the closing summary ----

def test_start_line_counts_parameters_and_the_run_ends_with_a_summary():
    d = tmpdir()
    out = run("train", f"--train.run_dir={d}", *SMALL).stdout
    ck = os.path.join(d, "checkpoints", "step-00000004")
    with open(os.path.join(ck, "manifest.json")) as f:
        manifest = json.load(f)
    params = 0
    for p in manifest["parameters"]:
        n = 1
        for s in p["shape"]:
            n *= s
        params += n
    start = out.splitlines()[0]
    assert f"model {params} parameters" in start and f"this rank {params} (" in start, (params, start)
    with open(os.path.join(d, "config.toml"), "rb") as f:
        t = tomllib.load(f)["train"]
    tokens = 4 * t["micro_batch"] * t["micro_batches"] * t["seq_len"]
    m = metrics(d)
    losses = [x["lm_loss"] for x in m]
    last = out.strip().splitlines()[-1]
    want = (f"foldmoe train: done, steps 1..4 in ", f" s, {tokens} tokens, final loss {losses[-1]:.4f}, "
            f"best loss {min(losses):.4f} (step {losses.index(min(losses)) + 1}), checkpoint {ck}")
    assert last.startswith(want[0]) and last.endswith(want[1]), (last, want)
    seconds = float(re.search(r" in ([0-9.]+) s,", last).group(1))
    # Printed to 0.1 s: a few tiny steps may round to 0.0.
    assert 0 <= seconds <= sum(x["step_time_s"] for x in m) + 60, (seconds, last)
    # A resume summarises its own steps.
    out = run("train", f"--train.run_dir={d}", *SMALL, "--train.steps=6", f"--checkpoint.load={ck}").stdout
    assert "foldmoe train: steps 5..6" in out and "foldmoe train: done, steps 5..6 in " in out, out
    # RL: the same lines.
    r = tmpdir()
    out = rl(r, "--rl.tasks=lookup", "--rl.steps=2").stdout
    rows = [x for x in metrics(r) if x["type"] == "train"]
    assert re.search(r"foldmoe rl: .* model \d+ parameters \(.*\), this rank \d+", out), out
    assert (f"foldmoe rl: done, steps 1..2 in " in out and
            f"{sum(x['response_tokens'] for x in rows)} tokens, final loss {rows[-1]['loss']:.4f}" in out and
            f"checkpoint {os.path.join(r, 'checkpoints', 'step-00000002')}" in out), out


def test_start_line_counts_this_ranks_share_under_expert_parallelism():
    """EP2 on two ranks: each rank holds every dense parameter and half of the expert ones."""
    one = run("train", f"--train.run_dir={tmpdir()}", *SMALL, "--train.steps=1").stdout.splitlines()[0]
    d = tmpdir()
    p = subprocess.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "mpi_yield_when_idle", "1", "-np",
                        "2", BIN, "train", f"--train.run_dir={d}", *SMALL, "--train.steps=1", "--parallel.ep=2"],
                       capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, (p.stdout, p.stderr)
    two = p.stdout.splitlines()[0]
    pattern = r"model (\d+) parameters .*, this rank (\d+) \((\d+) dense \+ (\d+) expert\)"
    total1, here1, dense1, expert1 = map(int, re.search(pattern, one).groups())
    total2, here2, dense2, expert2 = map(int, re.search(pattern, two).groups())
    assert total1 == here1 == dense1 + expert1 and total2 == total1, (one, two)
    assert dense2 == dense1 and expert2 * 2 == expert1 and here2 == dense2 + expert2, (one, two)


if __name__ == "__main__":
    main([test_rl_start_with_a_bad_prompt_leaves_the_run_dir_alone,
          test_used_run_dir_continues_from_its_checkpoints_and_is_replaced_only_on_overwrite,
          test_resume_truncates_metrics_to_the_resumed_step,
          test_resuming_another_runs_checkpoint_into_a_used_run_dir_is_refused_until_overwrite,
          test_rl_resume_truncates_metrics_to_the_resumed_step,
          test_metrics_write_failure_is_an_error_and_leaves_whole_rows,
          test_checkpoint_write_failure_is_an_error,
          test_config_write_failure_is_an_error,
          test_bad_run_and_checkpoint_paths_fail_before_training,
          test_start_line_counts_parameters_and_the_run_ends_with_a_summary,
          test_start_line_counts_this_ranks_share_under_expert_parallelism])
