"""Observability (docs/observability.md): TensorBoard event files read back by TensorBoard's own
reader, the step-time breakdown and peak memory per rank in metrics.jsonl, and the Chrome trace of
one profiled step, on one process and under mpirun."""
import glob
import json
import math
import os
import struct
import subprocess

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.tensorflow_stub import errors as tb_errors
from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as tb_records

from e2e_common import BIN, ENV, ROOT, main, metrics, run, tmpdir

SMALL = ["--train.micro_batch=4", "--train.seq_len=32", "--model.hidden=32", "--model.ffn=64",
         "--moe.ffn_hidden_size=32", "--model.heads=4", "--model.kv_heads=2"]
PHASES = ["data", "forward", "backward", "optimizer", "eval", "checkpoint", "other"]


def flatten(value, tag, out):
    """The flattening docs/observability.md §1 promises, written independently of foldmoe's."""
    if isinstance(value, bool):
        out[tag] = 1.0 if value else 0.0
    elif isinstance(value, (int, float)):
        out[tag] = float(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            flatten(v, f"{tag}/{k}" if tag else k, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            flatten(v, f"{tag}/{i}", out)


def expected_scalars(rows):
    """{(tag, step): value} of metrics.jsonl rows as float32."""
    want = {}
    for r in rows:
        flat = {}
        prefix = r["type"] + "/" if isinstance(r.get("type"), str) else ""
        for k, v in r.items():
            if k != "step":
                flatten(v, prefix + k, flat)
        for tag, v in flat.items():
            want[(tag, r["step"])] = float(np.float32(v))
    return want


def tensorboard_scalars(run_dir):
    ea = EventAccumulator(os.path.join(run_dir, "tensorboard"), size_guidance={"scalars": 0})
    ea.Reload()
    got = {}
    for tag in ea.Tags()["scalars"]:
        events = ea.Scalars(tag)
        steps = [e.step for e in events]
        assert len(steps) == len(set(steps)), f"{tag}: a step appears twice in TensorBoard: {steps}"
        for e in events:
            got[(tag, e.step)] = e.value
    return got


def assert_same_scalars(run_dir):
    want = expected_scalars(metrics(run_dir))
    got = tensorboard_scalars(run_dir)
    assert set(got) == set(want), f"tags/steps differ: only TB {sorted(set(got) - set(want))[:5]}, " \
                                  f"only jsonl {sorted(set(want) - set(got))[:5]}"
    for key, v in want.items():
        assert got[key] == v or (math.isnan(v) and math.isnan(got[key])), f"{key}: TB {got[key]} vs jsonl {v}"
    return want


def test_tensorboard_equals_metrics():
    d = tmpdir()
    run("train", f"--train.run_dir={d}", "--train.steps=5", "--log.tensorboard=true", *SMALL)
    want = assert_same_scalars(d)
    assert ("lm_loss", 5) in want and ("time_s/forward", 1) in want and ("peak_rss_mib/0", 3) in want


def test_tensorboard_records_are_checked_by_crc():
    d = tmpdir()
    run("train", f"--train.run_dir={d}", "--train.steps=2", "--log.tensorboard=true", *SMALL)
    (path,) = glob.glob(os.path.join(d, "tensorboard", "events.out.tfevents.*"))
    data = open(path, "rb").read()
    # Walk the frames with TensorBoard's CRC-32C: every length and payload checksum must hold.
    pos, frames = 0, 0
    while pos < len(data):
        (n,) = struct.unpack_from("<Q", data, pos)
        (len_crc,) = struct.unpack_from("<I", data, pos + 8)
        assert len_crc == tb_records.masked_crc32c(data[pos:pos + 8]), f"length CRC of frame {frames}"
        payload = data[pos + 12:pos + 12 + n]
        (data_crc,) = struct.unpack_from("<I", data, pos + 12 + n)
        assert data_crc == tb_records.masked_crc32c(payload), f"payload CRC of frame {frames}"
        pos += 12 + n + 4
        frames += 1
    assert pos == len(data) and frames == 3, (pos, len(data), frames)  # file_version + 2 steps
    # One flipped payload byte in the last frame: TensorBoard's record reader reports data loss.
    bad = bytearray(data)
    bad[-6] ^= 0x40
    open(path, "wb").write(bytes(bad))
    reader = tb_records.PyRecordReader_New(path.encode())
    try:
        for _ in range(frames):
            reader.GetNext()
        raise AssertionError("a corrupted record was read without a data-loss error")
    except tb_errors.DataLossError:
        pass


def test_resumed_run_keeps_one_value_per_step():
    d = tmpdir()
    run("train", f"--train.run_dir={d}", "--train.steps=6", "--checkpoint.interval=3", "--log.tensorboard=true",
        *SMALL)
    ckpt = os.path.join(d, "checkpoints", "step-00000003")
    # A different learning rate after the resume, so steps 4..6 of the two invocations differ.
    run("train", f"--train.run_dir={d}", "--train.steps=6", f"--checkpoint.load={ckpt}", "--optim.lr=0.0005",
        "--log.tensorboard=true", *SMALL)
    assert len(glob.glob(os.path.join(d, "tensorboard", "events.out.tfevents.*"))) == 2
    rows = metrics(d)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert_same_scalars(d)  # steps 4..6 are the resumed invocation's, each once


def check_rows(rows, world):
    for r in rows:
        t = r["time_s"]
        assert list(t)[:len(PHASES) - 1] == PHASES[:-1] and "other" in t, t
        assert all(v >= 0 for v in t.values()), t
        assert t["forward"] > 0 and t["backward"] > 0 and t["optimizer"] > 0, t
        # The phases and the rest add up to the wall time between rows, which covers the step.
        assert sum(v for k, v in t.items() if k != "comm") >= 0.9 * r["step_time_s"], (t, r["step_time_s"])
        assert len(r["peak_rss_mib"]) == world and all(m > 10 for m in r["peak_rss_mib"]), r["peak_rss_mib"]
    saves = [r for r in rows if r["time_s"]["checkpoint"] > 0]
    return saves


def test_breakdown_and_memory_one_process():
    d = tmpdir()
    run("train", f"--train.run_dir={d}", "--train.steps=4", "--checkpoint.interval=2", *SMALL)
    rows = metrics(d)
    saves = check_rows(rows, 1)
    # The interval save after step 2 is counted in the row after it (the time between rows 2 and 3).
    assert [r["step"] for r in saves] == [3], [r["time_s"] for r in rows]


def read_trace(d, step):
    path = os.path.join(d, f"profile-step-{step:08d}.json")
    with open(path) as f:
        return json.load(f)


def test_profile_one_process():
    d = tmpdir()
    p = run("train", f"--train.run_dir={d}", "--train.steps=3", "--profile", *SMALL)  # default: step 2
    assert "Chrome trace of step 2" in p.stdout, p.stdout
    doc = read_trace(d, 2)
    ev = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    names = [e["name"] for e in ev]
    assert any(n.startswith("forward mb0") for n in names) and any(n.startswith("backward mb0") for n in names)
    assert "optimizer" in names and "data" in names, names
    assert all(e["dur"] >= 0 and e["ts"] >= 0 and e["pid"] == 0 for e in ev)
    assert not glob.glob(os.path.join(d, "profile-step-00000001.json"))
    bad = run("train", f"--train.run_dir={tmpdir()}", "--log.profile_step=-1", check=False)
    assert bad.returncode == 2 and "V1" in bad.stderr and "[log] profile_step" in bad.stderr, bad.stderr


def test_rl_rows_reach_tensorboard():
    from e2e_common import pretrained_lookup
    d = tmpdir()
    run("rl", "--config", os.path.join(ROOT, "configs", "rl-hapo.toml"), "--init", pretrained_lookup(30),
        f"--train.run_dir={d}", "--rl.tasks=lookup", "--rl.steps=2", "--rl.prompts_per_step=4", "--rl.group_size=4",
        "--rl.minibatch_prompts=4", "--rl.max_response_tokens=8", "--rl.eval.every=2", "--rl.eval_questions=4",
        "--rl.eval.samples=1", "--log.tensorboard=true")
    rows = metrics(d)
    assert any("time_s" in r for r in rows)
    assert_same_scalars(d)


def mpirun(np_, *args):
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "mpi_yield_when_idle", "1", "-np", str(np_),
           BIN, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert p.returncode == 0, f"{' '.join(cmd)} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def test_two_ranks_profile_breakdown_and_tensorboard():
    d = tmpdir()
    mpirun(2, "train", f"--train.run_dir={d}", "--train.steps=3", "--parallel.ep=2", "--log.profile_step=1",
           "--log.tensorboard=true", *SMALL)
    rows = metrics(d)
    check_rows(rows, 2)
    assert all("comm" in r["time_s"] for r in rows)
    doc = read_trace(d, 1)
    ev = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert {e["pid"] for e in ev} == {0, 1}
    comm = [e for e in ev if e["cat"] == "comm"]
    assert any(e["name"].startswith("all_to_all") for e in comm), sorted({e["name"] for e in comm})
    assert any(e["name"].startswith("all_reduce") for e in comm)
    assert_same_scalars(d)


if __name__ == "__main__":
    main([test_tensorboard_equals_metrics, test_tensorboard_records_are_checked_by_crc,
          test_resumed_run_keeps_one_value_per_step, test_breakdown_and_memory_one_process, test_profile_one_process,
          test_rl_rows_reach_tensorboard,
          test_two_ranks_profile_breakdown_and_tensorboard])
