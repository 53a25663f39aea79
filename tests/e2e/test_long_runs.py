"""Runs that survive a cluster (docs/long-runs.md): stop signals and a wall-clock budget save a
checkpoint and exit 0, `--checkpoint.load=auto` continues with exactly the losses of an
uninterrupted run, a second signal exits at once without a corrupt checkpoint, retention keeps
what it should, non-finite steps stop (or are skipped) and never reach a checkpoint, and damaged
checkpoints (NaN tensor, edited manifest, bad safetensors header) are refused. The signals are sent
by the test, single-process and to a 2-rank mpirun job. safetensors files are cross-checked with
the `safetensors` Python package's own reader and writer."""
import json
import os
import re
import signal
import subprocess
import time
import zlib

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from e2e_common import BIN, ENV, ROOT, main, metrics, pretrained_lookup, run, tmpdir

MPI = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "mpi_yield_when_idle", "1", "--mca", "btl",
       "self,vader"]
STEPS = 150  # long enough that a signal sent after a few steps lands well before the end
TRAIN = ["train", f"--train.steps={STEPS}", "--log.interval=10", "--checkpoint.interval=50"]
# Timing fields differ between any two runs; everything else in a row must be identical.
TIMING = re.compile(r"time|per_s|mfu|seconds|comm_|peak_rss")  # peak_rss_mib: memory differs between runs


def losses(run_dir):
    return [{k: v for k, v in row.items() if not TIMING.search(k)} for row in metrics(run_dir)]


def command(run_dir, *flags, np_=1, args=TRAIN):
    cmd = [BIN, *args, f"--train.run_dir={run_dir}", *flags]
    return MPI + ["-np", str(np_)] + cmd if np_ > 1 else cmd


def rows(run_dir):
    try:
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            return sum(1 for line in f if line.endswith("\n") and '"type":"eval"' not in line.replace(" ", ""))
    except FileNotFoundError:
        return 0


def rank_pids(mpirun_pid):
    """The foldmoe processes mpirun started (its direct children on this host)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if ppid == mpirun_pid and os.path.basename(BIN).encode() in cmdline:
            pids.append(int(entry))
    return pids


def interrupt(cmd, run_dir, after_rows, signals, targets="process", ranks=1, together=False):
    """Starts `cmd`, waits until metrics.jsonl has `after_rows` rows, sends `signals` (to the process,
    or to every rank of an mpirun job), and returns (exit status, output). `together`: the process
    is stopped (SIGSTOP) while they are sent, so that all arrive before it can finish anything."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    deadline = time.time() + 300
    while rows(run_dir) < after_rows:
        assert p.poll() is None, f"{' '.join(cmd)} ended before the signal:\n{p.stdout.read()}"
        assert time.time() < deadline, "no progress"
        time.sleep(0.005)
    if targets == "ranks":
        pids = rank_pids(p.pid)
        assert len(pids) == ranks, pids
    else:
        pids = [p.pid]
    for pid in pids if together else []:
        os.kill(pid, signal.SIGSTOP)
    for sig in signals:
        for pid in pids:
            os.kill(pid, sig)
    for pid in pids if together else []:
        os.kill(pid, signal.SIGCONT)
    out, _ = p.communicate(timeout=300)
    return p.returncode, out


_REFERENCE = {}


def reference(np_=1):
    """metrics.jsonl rows of an uninterrupted run of STEPS steps (once per process and layout)."""
    if np_ not in _REFERENCE:
        d = tmpdir()
        p = subprocess.run(command(d, np_=np_), capture_output=True, text=True, env=ENV)
        assert p.returncode == 0, p.stdout + p.stderr
        _REFERENCE[np_] = losses(d)
    return _REFERENCE[np_]


def checkpoints(run_dir):
    root = os.path.join(run_dir, "checkpoints")
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


def assert_complete(ck, step):
    assert os.path.exists(os.path.join(ck, "COMPLETE")), os.listdir(ck)
    with open(os.path.join(ck, "manifest.json")) as f:
        assert json.load(f)["step"] == step
    for name in ("model.safetensors", "optimizer.safetensors"):
        for key, value in load_file(os.path.join(ck, name)).items():  # the Python reader accepts it
            assert np.isfinite(value).all(), (ck, key)


def preempt_and_resume(sig, np_=1, targets="process"):
    d = tmpdir()
    rc, out = interrupt(command(d, np_=np_), d, 5, [sig], targets=targets, ranks=np_)
    name = signal.Signals(sig).name
    m = re.search(rf"saved checkpoint at step (\d+) after signal {name}", out)
    assert rc == 0 and m, f"exit {rc}\n{out}"
    step = int(m.group(1))
    assert 5 <= step < STEPS, out
    assert_complete(os.path.join(d, "checkpoints", f"step-{step:08d}"), step)
    assert all(not re.search(r"\.(tmp|old)-", c) for c in checkpoints(d)), checkpoints(d)
    assert len(metrics(d)) == step  # every finished step has its row, none more
    # The requeued job: the same command with --checkpoint.load=auto.
    p = subprocess.run(command(d, "--checkpoint.load=auto", np_=np_), capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"checkpoint.load = auto: continuing from {d}/checkpoints/step-{step:08d}" in p.stdout, p.stdout
    assert f"steps {step + 1}..{STEPS}" in p.stdout, p.stdout
    assert losses(d) == reference(np_)


def test_sigterm_single_process_saves_and_auto_resumes_exactly():
    preempt_and_resume(signal.SIGTERM)


def test_sigusr1_single_process_saves_and_auto_resumes_exactly():
    preempt_and_resume(signal.SIGUSR1)


def test_sigusr1_to_mpirun_is_forwarded_to_both_ranks():
    preempt_and_resume(signal.SIGUSR1, np_=2)


def test_sigterm_to_every_rank_of_an_mpirun_job():
    preempt_and_resume(signal.SIGTERM, np_=2, targets="ranks")


def test_sigterm_to_one_rank_only_still_stops_both_together():
    # Only rank 1 is signalled; the ranks agree after the step, so rank 0 saves too and all exit 0.
    d = tmpdir()
    p = subprocess.Popen(command(d, np_=2), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    while rows(d) < 5:
        assert p.poll() is None
        time.sleep(0.005)
    pids = rank_pids(p.pid)
    assert len(pids) == 2
    ranks = {}
    for pid in pids:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        ranks[int(env[b"OMPI_COMM_WORLD_RANK"])] = pid
    os.kill(ranks[1], signal.SIGTERM)
    out, _ = p.communicate(timeout=300)
    m = re.search(r"saved checkpoint at step (\d+) after signal SIGTERM", out)
    assert p.returncode == 0 and m, out
    assert_complete(os.path.join(d, "checkpoints", f"step-{int(m.group(1)):08d}"), int(m.group(1)))


def test_sigterm_to_mpirun_never_leaves_a_corrupt_checkpoint():
    # Open MPI 4.1's mpirun turns SIGTERM into SIGTERM to the ranks and SIGKILL one second later
    # (odls_base_sigkill_timeout), and exits 1: a save may or may not finish in time. Either way no
    # checkpoint name holds a partial save, and auto continues the run exactly.
    d = tmpdir()
    rc, out = interrupt(command(d, "--checkpoint.interval=3", np_=2), d, 5, [signal.SIGTERM])
    assert rc != 0, out
    for c in checkpoints(d):
        if re.fullmatch(r"step-\d{8}", c):
            assert_complete(os.path.join(d, "checkpoints", c), int(c[5:]))
    p = subprocess.run(command(d, "--checkpoint.interval=3", "--checkpoint.load=auto", np_=2), capture_output=True,
                       text=True, env=ENV)
    assert p.returncode == 0, p.stdout + p.stderr
    assert losses(d) == reference(2)


def test_second_signal_exits_at_once_without_a_corrupt_checkpoint():
    d = tmpdir()
    # Two different signals (two of the same kind may merge into one delivery), both pending when
    # the process resumes: the second is handled right after the first.
    rc, out = interrupt(command(d, "--checkpoint.interval=2"), d, 5, [signal.SIGTERM, signal.SIGINT], together=True)
    assert rc in (128 + signal.SIGINT, 128 + signal.SIGTERM), f"exit {rc}\n{out}"
    assert "second stop signal, exiting now without saving" in out, out
    # Whatever is under a real checkpoint name is complete; a half-written save may remain only as
    # a step-N.tmp-PID directory, which the next start removes.
    for c in checkpoints(d):
        if re.fullmatch(r"step-\d{8}", c):
            assert_complete(os.path.join(d, "checkpoints", c), int(c[5:]))
    p = subprocess.run(command(d, "--checkpoint.interval=2", "--checkpoint.load=auto"), capture_output=True,
                       text=True, env=ENV)
    assert p.returncode == 0, p.stdout + p.stderr
    assert all(re.fullmatch(r"step-\d{8}", c) for c in checkpoints(d)), checkpoints(d)
    assert losses(d) == reference()


def test_max_minutes_saves_before_the_time_limit():
    d = tmpdir()
    p = subprocess.run(command(d, "--train.steps=1000000", "--train.max_minutes=0.02"), capture_output=True,
                       text=True, env=ENV, timeout=120)
    m = re.search(r"saved checkpoint at step (\d+) after train.max_minutes = 0.02 was used up", p.stdout)
    assert p.returncode == 0 and m, p.stdout + p.stderr
    step = int(m.group(1))
    assert_complete(os.path.join(d, "checkpoints", f"step-{step:08d}"), step)
    assert "foldmoe train: stopped after train.max_minutes = 0.02 was used up, steps 1.." in p.stdout


RL = ["rl", "--config", os.path.join(ROOT, "configs", "rl-hapo.toml"), "--rl.tasks=lookup",
      "--rl.prompts_per_step=16", "--rl.group_size=8", "--rl.minibatch_prompts=8", "--rl.max_response_tokens=8",
      "--rl.eval_questions=50", "--rl.eval.samples=2", "--rl.eval.before_train=false", "--rl.eval.every=100",
      "--rl.steps=12", "--rl.checkpoint_every=100", "--log.interval=1"]


def test_rl_preempted_and_resumed_matches_an_uninterrupted_run():
    args = RL + ["--init", pretrained_lookup(200)]
    full = tmpdir()
    p = subprocess.run(command(full, args=args), capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, p.stdout + p.stderr
    d = tmpdir()
    # Only SIGUSR2 is a stop signal here: the [train] keys of the RL command line apply (not the
    # pretraining checkpoint's).
    rc, out = interrupt(command(d, "--train.exit_signals=SIGUSR2", args=args), d, 3, [signal.SIGUSR2])
    m = re.search(r"foldmoe rl: saved checkpoint at step (\d+) after signal SIGUSR2", out)
    assert rc == 0 and m, f"exit {rc}\n{out}"
    step = int(m.group(1))
    assert 3 <= step < 12
    p = subprocess.run(command(d, "--checkpoint.load=auto", args=args), capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, p.stdout + p.stderr
    assert losses(d) == losses(full)


def test_diverging_zero1_run_on_two_ranks_stops_on_every_rank():
    d = tmpdir()
    p = subprocess.run(command(d, "--train.steps=60", "--optim.lr=1e4", "--optim.warmup_steps=0",
                               "--parallel.distributed_optimizer=true", np_=2), capture_output=True, text=True,
                       env=ENV, timeout=300)
    assert p.returncode != 0, p.stdout + p.stderr
    assert "training error C1: step" in p.stderr and "non-finite gradient norm" in p.stderr, p.stdout + p.stderr
    assert re.search(r"first in the gradient of [\w.]+ \(on rank [01]\)", p.stderr), p.stderr
    assert p.stderr.count("training error C1") == 1, p.stderr  # one message for the job
    assert checkpoints(d) == [], checkpoints(d)


def test_divergence_stops_with_the_step_and_value_and_saves_nothing_non_finite():
    d = tmpdir()
    p = run("train", "--train.steps=60", "--optim.lr=1e4", "--optim.warmup_steps=0", "--checkpoint.interval=1",
            f"--train.run_dir={d}", check=False)
    m = re.search(r"training error C1: step (\d+) has a non-finite gradient norm \((-?nan|-?inf)", p.stderr)
    assert p.returncode == 2 and m, p.stdout + p.stderr
    assert re.search(r"first in the gradient of [\w.]+ \(on rank 0\)", p.stderr) and "fix:" in p.stderr, p.stderr
    bad = int(m.group(1))
    saved = checkpoints(d)
    assert saved == [f"step-{s:08d}" for s in range(1, bad)], saved  # every finished step, none after
    for c in saved:
        assert_complete(os.path.join(d, "checkpoints", c), int(c[5:]))


def test_weights_that_overflow_from_finite_gradients_stop_the_run():
    # A weight decay so large that lr * weight_decay overflows float: the first update turns finite
    # weights into non-finite ones although every gradient is finite.
    d = tmpdir()
    p = subprocess.run(command(d, "--train.steps=5", "--optim.weight_decay=1e45", "--checkpoint.interval=1",
                               "--parallel.ep=2", np_=2), capture_output=True, text=True, env=ENV, timeout=300)
    assert p.returncode != 0, p.stdout + p.stderr
    assert re.search(r"training error C1: step 1 left a non-finite value in the weights of [\w.]+ \(on rank [01]\)",
                     p.stderr), p.stdout + p.stderr
    assert p.stderr.count("training error C1") == 1, p.stderr
    assert checkpoints(d) == [], checkpoints(d)


def test_skip_nonfinite_steps_skips_without_update_then_stops():
    d = tmpdir()
    p = run("train", "--train.steps=60", "--optim.lr=1e4", "--optim.warmup_steps=0", "--checkpoint.interval=1",
            "--train.skip_nonfinite_steps=3", f"--train.run_dir={d}", check=False)
    m = re.search(r"step (\d+) has a non-finite gradient norm .*more than train.skip_nonfinite_steps = 3 non-finite "
                  r"steps in a row", p.stderr)
    assert p.returncode == 2 and m, p.stdout + p.stderr
    bad = int(m.group(1))
    rows_ = metrics(d)
    assert [r["nonfinite_skipped_steps"] for r in rows_[-3:]] == [1, 2, 3], rows_[-3:]
    assert all(r["nonfinite_skipped_steps"] == 0 for r in rows_[:-3])
    first_skipped = bad - 3
    # A skipped step changes nothing: the checkpoints after it hold the weights and moments before it.
    before = os.path.join(d, "checkpoints", f"step-{first_skipped - 1:08d}")
    for s in range(first_skipped, bad):
        after = os.path.join(d, "checkpoints", f"step-{s:08d}")
        for name in ("model.safetensors", "optimizer.safetensors"):
            a, b = load_file(os.path.join(before, name)), load_file(os.path.join(after, name))
            assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), (s, name)


# ---- checkpoint integrity -----------------------------------------------------------------------


def canonical_checksum(manifest):
    """The manifest checksum, computed independently: CRC-32 (zlib) of the JSON without the
    checksum field, keys sorted, no spaces."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"crc32:{zlib.crc32(text.encode()):08x}"


def reseal(ck):
    """Makes the manifest match the files again (sizes, CRCs, its own checksum), as a tool that
    rewrote a tensor file would: what remains is what the file itself holds."""
    path = os.path.join(ck, "manifest.json")
    with open(path) as f:
        m = json.load(f)
    for name in m["files"]:
        with open(os.path.join(ck, name), "rb") as f:
            data = f.read()
        m["files"][name] = {"bytes": len(data), "crc32": zlib.crc32(data)}
    m["checksum"] = canonical_checksum(m)
    with open(path, "w") as f:
        json.dump(m, f, indent=2)


_SMALL = {}


def small_checkpoint():
    """A fresh copy of a 4-step checkpoint."""
    if "src" not in _SMALL:
        d = tmpdir()
        run("train", "--train.steps=4", f"--train.run_dir={d}")
        _SMALL["src"] = os.path.join(d, "checkpoints", "step-00000004")
    dst = os.path.join(tmpdir(), "step-00000004")
    subprocess.run(["cp", "-r", _SMALL["src"], dst], check=True)
    return dst


def eval_checkpoint(ck):
    return run("eval", "--checkpoint", ck, "--samples", "5", check=False)


def test_manifest_checksum_matches_an_independent_computation():
    ck = small_checkpoint()
    with open(os.path.join(ck, "manifest.json")) as f:
        m = json.load(f)
    assert m["checksum"] == canonical_checksum(m)


def test_edited_manifest_step_is_refused():
    ck = small_checkpoint()
    path = os.path.join(ck, "manifest.json")
    with open(path) as f:
        m = json.load(f)
    m["step"] = 2
    with open(path, "w") as f:
        json.dump(m, f, indent=2)
    p = eval_checkpoint(ck)
    assert p.returncode == 2 and "checkpoint error C3" in p.stderr and "fails its own checksum" in p.stderr, p.stderr
    p = run("train", "--train.steps=10", f"--checkpoint.load={ck}", f"--train.run_dir={tmpdir()}", check=False)
    assert p.returncode == 2 and "C3" in p.stderr, p.stderr


def test_checkpoint_with_a_nan_is_refused_naming_the_tensor():
    ck = small_checkpoint()
    path = os.path.join(ck, "model.safetensors")
    with safe_open(path, "np") as f:
        meta = f.metadata()
    tensors = load_file(path)
    name = sorted(tensors)[1]
    tensors[name].flat[3] = np.nan
    save_file(tensors, path, metadata=meta)
    reseal(ck)
    for p in (eval_checkpoint(ck),
              run("train", "--train.steps=10", f"--checkpoint.load={ck}", f"--train.run_dir={tmpdir()}", check=False)):
        assert p.returncode == 2, p.stdout + p.stderr
        assert "checkpoint error C2" in p.stderr and f"'{name}'" in p.stderr and "element 3 is nan" in p.stderr, p.stderr


def test_files_written_by_the_python_package_load_in_foldmoe_and_back():
    ck = small_checkpoint()
    before = eval_checkpoint(ck)
    assert before.returncode == 0, before.stderr
    for name in ("model.safetensors", "optimizer.safetensors"):
        path = os.path.join(ck, name)
        with safe_open(path, "np") as f:
            meta = f.metadata()
        save_file(load_file(path), path, metadata=meta)  # the Python writer's layout and order
    reseal(ck)
    after = eval_checkpoint(ck)
    assert after.returncode == 0, after.stderr
    numbers = lambda text: re.findall(r"\d+\.\d+", text.split("\n", 1)[-1])  # noqa: E731
    assert numbers(after.stdout) == numbers(before.stdout), (before.stdout, after.stdout)


def header_variants(path):
    """Damaged copies of a safetensors file: (what, bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    out = []
    for delta in (-1, 1):
        out.append((f"header length {delta:+d}", (n + delta).to_bytes(8, "little") + data[8:]))
    out.append(("trailing byte", data + b"\0"))
    # A gap: the first tensor (in offset order) moved 4 bytes later, everything else unchanged.
    names = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])
    last = names[-1]
    b, e = header[last]["data_offsets"]
    header[last]["data_offsets"] = [b + 4, e + 4]
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    out.append(("gap before the last tensor", len(text).to_bytes(8, "little") + text + data[8 + n:] + b"\0" * 4))
    return out


def test_damaged_headers_are_refused_here_and_by_the_python_reader():
    for what, damaged in header_variants(os.path.join(small_checkpoint(), "model.safetensors")):
        ck = small_checkpoint()
        path = os.path.join(ck, "model.safetensors")
        with open(path, "wb") as f:
            f.write(damaged)
        try:
            load_file(path)
            raise AssertionError(f"the Python reader accepted: {what}")
        except (SafetensorError, ValueError, OSError):
            pass
        reseal(ck)  # the manifest agrees: only the safetensors rules can catch it
        p = eval_checkpoint(ck)
        assert p.returncode == 2 and "safetensors error C4" in p.stderr, (what, p.stderr)


# ---- retention and leftovers --------------------------------------------------------------------


def test_keep_last_and_keep_every():
    d = tmpdir()
    p = run("train", "--train.steps=14", "--checkpoint.interval=2", "--checkpoint.keep_last=2",
            "--checkpoint.keep_every=6", f"--train.run_dir={d}")
    assert checkpoints(d) == ["step-00000006", "step-00000012", "step-00000014"], checkpoints(d)
    assert "checkpoint.keep_last = 2: removed" in p.stdout


def test_resumed_from_checkpoint_survives_until_a_newer_one_is_complete():
    d = tmpdir()
    run("train", "--train.steps=10", "--checkpoint.interval=5", "--checkpoint.keep_last=1", f"--train.run_dir={d}")
    assert checkpoints(d) == ["step-00000010"]
    # The continuation diverges before its first save (step 15): step 10 must still be there.
    p = run("train", "--train.steps=30", "--checkpoint.interval=5", "--checkpoint.keep_last=1", "--optim.lr=1e4",
            "--optim.warmup_steps=0", "--checkpoint.load=auto", f"--train.run_dir={d}", check=False)
    m = re.search(r"step (\d+) has a non-finite", p.stderr)
    assert p.returncode == 2 and m and int(m.group(1)) <= 15, p.stdout + p.stderr  # no step-15 save
    assert checkpoints(d) == ["step-00000010"]
    assert_complete(os.path.join(d, "checkpoints", "step-00000010"), 10)
    # A sound continuation replaces it once step 15 is complete.
    run("train", "--train.steps=15", "--checkpoint.interval=5", "--checkpoint.keep_last=1", "--checkpoint.load=auto",
        f"--train.run_dir={d}")
    assert checkpoints(d) == ["step-00000015"]


def test_stale_save_leftovers_are_removed_at_start():
    d = tmpdir()
    run("train", "--train.steps=4", f"--train.run_dir={d}")
    root = os.path.join(d, "checkpoints")
    for leftover in ("step-00000006.tmp-424242", "step-00000004.old-77", "notes.tmp-1"):
        os.makedirs(os.path.join(root, leftover))
    p = run("train", "--train.steps=6", "--checkpoint.load=auto", f"--train.run_dir={d}")
    assert "removed" in p.stdout and "step-00000006.tmp-424242 (left by an interrupted checkpoint save)" in p.stdout
    assert checkpoints(d) == ["notes.tmp-1", "step-00000004", "step-00000006"], checkpoints(d)


def test_auto_on_an_empty_or_checkpointless_run_dir_starts_fresh():
    d = tmpdir()
    fresh = run("train", "--train.steps=3", "--checkpoint.load=latest", f"--train.run_dir={d}")
    assert "steps 1..3" in fresh.stdout and "checkpoint.load = auto: no complete checkpoint in" in fresh.stdout
    # A job killed before its first save left metrics rows but no checkpoint: auto starts over.
    for c in checkpoints(d):
        subprocess.run(["rm", "-r", os.path.join(d, "checkpoints", c)], check=True)
    again = run("train", "--train.steps=3", "--checkpoint.load=auto", f"--train.run_dir={d}")
    assert "steps 1..3" in again.stdout and len(metrics(d)) == 3


if __name__ == "__main__":
    main([test_weights_that_overflow_from_finite_gradients_stop_the_run,
          test_sigterm_single_process_saves_and_auto_resumes_exactly,
          test_sigusr1_single_process_saves_and_auto_resumes_exactly,
          test_sigusr1_to_mpirun_is_forwarded_to_both_ranks,
          test_sigterm_to_every_rank_of_an_mpirun_job,
          test_sigterm_to_one_rank_only_still_stops_both_together,
          test_sigterm_to_mpirun_never_leaves_a_corrupt_checkpoint,
          test_second_signal_exits_at_once_without_a_corrupt_checkpoint,
          test_max_minutes_saves_before_the_time_limit,
          test_rl_preempted_and_resumed_matches_an_uninterrupted_run,
          test_diverging_zero1_run_on_two_ranks_stops_on_every_rank,
          test_divergence_stops_with_the_step_and_value_and_saves_nothing_non_finite,
          test_skip_nonfinite_steps_skips_without_update_then_stops,
          test_manifest_checksum_matches_an_independent_computation,
          test_edited_manifest_step_is_refused,
          test_checkpoint_with_a_nan_is_refused_naming_the_tensor,
          test_files_written_by_the_python_package_load_in_foldmoe_and_back,
          test_damaged_headers_are_refused_here_and_by_the_python_reader,
          test_keep_last_and_keep_every,
          test_resumed_from_checkpoint_survives_until_a_newer_one_is_complete,
          test_stale_save_leftovers_are_removed_at_start,
          test_auto_on_an_empty_or_checkpointless_run_dir_starts_fresh])
