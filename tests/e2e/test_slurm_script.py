#!/usr/bin/env python3
"""scripts/slurm/train.sbatch: it parses (bash -n) and passes shellcheck, and against fake `srun`,
`mpirun` and `scontrol` commands it launches foldmoe with the right options, forwards the time-limit
signal (USR1) to the launcher and requeues the job, and passes a failing launcher's status on."""
import os
import signal
import subprocess
import tempfile
import time

from e2e_common import BIN, ENV, ROOT, main, tmpdir

SCRIPT = os.path.join(ROOT, "scripts", "slurm", "train.sbatch")

# A launcher that records its arguments and the signals it receives. FAKE_MODE=wait: it waits for
# USR1 (and then exits 0 like a rank that saved); FAKE_MODE=fail: it exits 3.
FAKE_LAUNCHER = r"""#!/bin/bash
log="$FAKE_LOG"
echo "$(basename "$0") $*" >> "$log"
case "${FAKE_MODE:-ok}" in
  ok) exit 0 ;;
  fail) exit 3 ;;
  wait)
    trap 'echo "got USR1" >> "$log"; exit 0' USR1
    touch "$FAKE_LOG.ready"
    for _ in $(seq 300); do sleep 0.1; done
    echo "no signal" >> "$log"; exit 9 ;;
esac
"""
FAKE_SCONTROL = "#!/bin/bash\necho \"scontrol $*\" >> \"$FAKE_LOG\"\n"


def setup(mode):
    d = tempfile.mkdtemp(prefix="foldmoe-slurm-")
    bindir = os.path.join(d, "bin")
    os.mkdir(bindir)
    for name, text in [("srun", FAKE_LAUNCHER), ("mpirun", FAKE_LAUNCHER), ("scontrol", FAKE_SCONTROL)]:
        path = os.path.join(bindir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
    log = os.path.join(d, "log")
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"], FAKE_LOG=log, FAKE_MODE=mode,
               SLURM_JOB_ID="4242", SLURM_NTASKS="8", SLURM_JOB_NAME="tiny", FOLDMOE="/opt/foldmoe",
               CONFIG="configs/folded-8rank.toml", RUN_DIR=os.path.join(d, "run"))
    return env, log


def read(path):
    with open(path) as f:
        return f.read().splitlines()


def test_script_parses_and_passes_shellcheck():
    subprocess.run(["bash", "-n", SCRIPT], check=True)
    p = subprocess.run(["shellcheck", SCRIPT], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout


def test_srun_launch_resumes_automatically():
    env, log = setup("ok")
    p = subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    lines = read(log)
    assert lines == [f"srun --kill-on-bad-exit=1 --cpu-bind=cores /opt/foldmoe train --config configs/folded-8rank.toml "
                     f"--train.run_dir={env['RUN_DIR']} --checkpoint.load=auto"], lines


def test_mpirun_launch_uses_every_task():
    env, log = setup("ok")
    env["LAUNCHER"] = "mpirun"
    env["EXTRA_ARGS"] = "--train.steps=10 --log.interval=5"
    p = subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert read(log) == [f"mpirun -np 8 --bind-to core /opt/foldmoe train --config configs/folded-8rank.toml "
                         f"--train.run_dir={env['RUN_DIR']} --checkpoint.load=auto --train.steps=10 "
                         f"--log.interval=5"], read(log)


def test_time_limit_signal_is_forwarded_and_the_job_requeued():
    env, log = setup("wait")
    p = subprocess.Popen(["bash", SCRIPT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while not os.path.exists(log + ".ready"):
        assert time.time() < deadline and p.poll() is None, "the fake launcher never started"
        time.sleep(0.05)
    p.send_signal(signal.SIGUSR1)  # what Slurm's --signal=B:USR1@120 does
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    lines = read(log)
    assert lines[1:] == ["got USR1", "scontrol requeue 4242"], lines
    assert "forwarding to the ranks" in err and "requeueing job 4242" in err, err


def test_failing_launcher_status_is_kept_and_nothing_is_requeued():
    env, log = setup("fail")
    p = subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert not any(line.startswith("scontrol") for line in read(log)), read(log)


def test_outside_sbatch_is_refused():
    env, log = setup("ok")
    del env["SLURM_NTASKS"]
    p = subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "SLURM_NTASKS" in p.stderr, p.stderr
    assert not os.path.exists(log)


def test_foldmoe_reads_srun_variables():
    """In a job step (SLURM_STEP_ID set) foldmoe takes its rank and world size from Slurm; started
    alone there, MPI sees a world of one, which is refused with the fix. The batch script's own
    variables (no step id) leave a one-process run alone."""
    slurm = dict(ENV, SLURM_PROCID="0", SLURM_NTASKS="2", SLURM_JOB_ID="7")
    d = tmpdir()
    p = subprocess.run([BIN, "train", f"--train.run_dir={d}", "--train.steps=1", "--train.micro_batch=2",
                        "--train.seq_len=32"], env=dict(slurm, SLURM_STEP_ID="0", SLURM_STEP_NUM_TASKS="2"),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "srun started 2 ranks but MPI sees a world of 1" in p.stderr, p.stderr
    assert "srun --mpi=pmix" in p.stderr, p.stderr
    p = subprocess.run([BIN, "train", f"--train.run_dir={tmpdir()}", "--train.steps=1", "--train.micro_batch=2",
                        "--train.seq_len=32"], env=slurm, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "on 1 rank(s)" in p.stdout, (p.stdout, p.stderr)


if __name__ == "__main__":
    main([test_script_parses_and_passes_shellcheck,
          test_srun_launch_resumes_automatically,
          test_mpirun_launch_uses_every_task,
          test_time_limit_signal_is_forwarded_and_the_job_requeued,
          test_failing_launcher_status_is_kept_and_nothing_is_requeued,
          test_outside_sbatch_is_refused,
          test_foldmoe_reads_srun_variables])
