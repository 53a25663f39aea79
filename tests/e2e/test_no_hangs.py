#!/usr/bin/env python3
"""No hangs (docs/long-runs.md): an error on one rank only, in each phase of a run, ends a 4-rank
mpirun job within seconds with a non-zero status and the message printed once with the rank; a rank
that stops inside a run makes the others' collective watchdog abort the job after
[parallel] timeout_s, naming the rank, group and operation. Every job runs under a subprocess
timeout, so a regression fails here instead of hanging the test run."""
import os
import shutil
import subprocess

from e2e_common import BIN, ENV, main, tmpdir

RANKS = 4
LIMIT_S = 60  # a job that is still running after this hangs
SMALL = ["--train.micro_batch=2", "--train.seq_len=32", "--log.interval=1", "--model.hidden=32",
         "--model.ffn=64", "--moe.ffn_hidden_size=32"]


def mpirun(args, env=None, preexec_fn=None, ranks=RANKS):
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "mpi_yield_when_idle", "1", "-np",
           str(ranks), BIN, *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=env or ENV, timeout=LIMIT_S,
                              preexec_fn=preexec_fn)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{' '.join(cmd)} still ran after {LIMIT_S} s: a hang\n{e.stderr}") from None


def with_fault(spec):
    return dict(ENV, FOLDMOE_FAULT_INJECT=spec)


def expect_one_error(p, fragment, rank):
    assert p.returncode != 0, (p.returncode, p.stdout[-2000:], p.stderr[-4000:])
    line = f"foldmoe: error (rank {rank}): {fragment}"
    assert p.stderr.count(line) == 1, f"expected once: {line!r}\n{p.stderr[-4000:]}"
    assert p.stderr.count("foldmoe: error") == 1, p.stderr[-4000:]


def test_error_on_one_rank_in_each_phase_ends_the_job():
    for phase, step in [("startup", None), ("data", 2), ("step", 3), ("save", 2)]:
        d = tmpdir()
        spec = f"rank=2,phase={phase}" + (f",step={step}" if step else "")
        p = mpirun(["train", f"--train.run_dir={d}", *SMALL, "--train.steps=4", "--checkpoint.interval=2"],
                   env=with_fault(spec))
        where = f" at step {step}" if step else ""
        expect_one_error(p, f"injected fault on rank 2 in phase {phase}{where} (FOLDMOE_FAULT_INJECT", 2)


def test_error_on_rank_zero_only_ends_the_job():
    d = tmpdir()
    p = mpirun(["train", f"--train.run_dir={d}", *SMALL, "--train.steps=4"], env=with_fault("rank=0,phase=step,step=2"))
    expect_one_error(p, "injected fault on rank 0 in phase step at step 2", 0)


# Runs foldmoe with RLIMIT_FSIZE on rank 0 only: a write past the limit fails with EFBIG, the
# failure path of a full disk (SIGXFSZ ignored, so that the write returns the error). mpirun itself
# and the other ranks keep their limits (the shared-memory transport is avoided: its files count).
RANK0_FILE_LIMIT = """
import os, resource, signal, sys
if os.environ.get("OMPI_COMM_WORLD_RANK") == "0":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_full_disk_during_a_save_on_rank_zero_ends_the_job():
    """Rank 0 writes the checkpoint while the others wait for it: a write failure must not leave
    them waiting."""
    import sys
    d = tmpdir()
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "btl", "self,tcp", "-np", str(RANKS),
           sys.executable, "-c", RANK0_FILE_LIMIT, "40000", BIN, "train", f"--train.run_dir={d}", *SMALL,
           "--train.steps=2"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=LIMIT_S)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"still ran after {LIMIT_S} s: a hang\n{e.stderr}") from None
    expect_one_error(p, "", 0)
    assert "File too large" in p.stderr, p.stderr[-3000:]
    assert not os.path.exists(os.path.join(d, "checkpoints", "step-00000002"))


def test_bad_metrics_path_on_resume_ends_the_job():
    d = tmpdir()
    p = mpirun(["train", f"--train.run_dir={d}", *SMALL, "--train.steps=2"])
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-3000:])
    metrics = os.path.join(d, "metrics.jsonl")
    os.remove(metrics)
    os.mkdir(metrics)  # metrics.jsonl is now a directory: rank 0 cannot open it
    p = mpirun(["train", f"--train.run_dir={d}", *SMALL, "--train.steps=4",
                f"--checkpoint.load={os.path.join(d, 'checkpoints', 'step-00000002')}"])
    assert p.returncode != 0, (p.stdout[-2000:], p.stderr[-3000:])
    assert metrics in p.stderr and p.stderr.count("foldmoe: error") == 1, p.stderr[-3000:]
    shutil.rmtree(d)


def test_a_stopped_rank_makes_the_watchdog_abort_the_job():
    d = tmpdir()
    p = mpirun(["train", f"--train.run_dir={d}", *SMALL, "--train.steps=4", "--parallel.timeout_s=3"],
               env=with_fault("rank=1,phase=step,step=2,kind=hang"))
    assert p.returncode != 0, (p.stdout[-2000:], p.stderr[-3000:])
    assert "FOLDMOE_FAULT_INJECT: rank 1 stops in phase step" in p.stderr, p.stderr[-3000:]
    # A waiting rank names itself, the group, the operation and the timeout.
    import re
    m = re.search(r"foldmoe: error: rank (\d): (\w+) on group '(\w+)' \(member \d of \d\) has waited ([0-9.]+) s, "
                  r"longer than \[parallel\] timeout_s = 3", p.stderr)
    assert m, p.stderr[-3000:]
    assert m.group(1) != "1" and float(m.group(4)) >= 3.0, m.group(0)


def test_watchdog_off_with_zero_and_a_healthy_run_is_untouched():
    """A run whose collectives all finish is not disturbed by a short timeout."""
    d = tmpdir()
    p = mpirun(["train", f"--train.run_dir={d}", *SMALL, "--train.steps=3", "--parallel.timeout_s=20"], ranks=2)
    assert p.returncode == 0 and "foldmoe train: done, steps 1..3" in p.stdout, (p.stdout[-2000:], p.stderr[-3000:])
    p = mpirun(["train", f"--train.run_dir={tmpdir()}", *SMALL, "--train.steps=2", "--parallel.timeout_s=0"], ranks=2)
    assert p.returncode == 0, p.stderr[-3000:]


if __name__ == "__main__":
    main([test_error_on_one_rank_in_each_phase_ends_the_job,
          test_error_on_rank_zero_only_ends_the_job,
          test_full_disk_during_a_save_on_rank_zero_ends_the_job,
          test_bad_metrics_path_on_resume_ends_the_job,
          test_a_stopped_rank_makes_the_watchdog_abort_the_job,
          test_watchdog_off_with_zero_and_a_healthy_run_is_untouched])
