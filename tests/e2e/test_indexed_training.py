"""Training on indexed (Megatron .bin/.idx) data: one process and four 4-rank layouts (DP2 x TP2,
TP2 with EP4 folded over the same ranks, PP2 x DP2, CP2 x DP2) follow the same loss and validation
curves to fp32 round-off; validation rows appear at the interval; a resumed run continues with exactly the tokens
of the uninterrupted one; resuming on other data is refused naming both fingerprints; eod_mask_loss
removes exactly the positions that read an end-of-document token (counted here from the data
file); and each bad [data] / [eval] value stops the run before its run directory exists.

The datasets are written here by a small writer of Megatron's MMIDIDX layout (independent of
foldmoe's own writer)."""
import json
import math
import os
import re
import struct
import subprocess

import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import BIN, ENV, main, metrics, run, tmpdir  # noqa: E402
from megatron_files import write_megatron

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "tests", "parallel", "configs", "parity-moe.toml")
MPI = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "mpi_yield_when_idle", "1", "--mca", "btl",
       "self,vader"]
EOS = 2  # the character tokenizer's <eos>
DOC_LEN = 8  # every document: 7 characters then <eos>
SEQ = 32  # a multiple of DOC_LEN: every sample reads exactly SEQ / DOC_LEN end-of-document inputs


def read_megatron(prefix):
    """The documents back from the files (checks the writer and gives the test its own count)."""
    with open(prefix + ".idx", "rb") as f:
        raw = f.read()
    assert raw[:9] == b"MMIDIDX\x00\x00"
    (n,) = struct.unpack_from("<Q", raw, 18)
    lengths = struct.unpack_from(f"<{n}i", raw, 34)
    with open(prefix + ".bin", "rb") as f:
        data = f.read()
    tokens = struct.unpack(f"<{len(data) // 2}H", data)
    docs, p = [], 0
    for length in lengths:
        docs.append(tokens[p:p + length])
        p += length
    return docs


def make_dataset(name="corpus", docs=600, seed=0):
    """Documents of DOC_LEN tokens: a word pattern drawn from a small LCG (learnable), then <eos>."""
    prefix = os.path.join(tmpdir(), name)
    out, x = [], seed * 7919 + 17
    for _ in range(docs):
        x = (1103515245 * x + 12345) % (1 << 31)
        first = 3 + 65 + (x >> 8) % 26  # a lowercase letter
        step = 1 + (x >> 16) % 3
        out.append([3 + 65 + ((first - 68 + k * step) % 26) for k in range(DOC_LEN - 1)] + [EOS])
    write_megatron(prefix, out)
    assert [list(d) for d in read_megatron(prefix)] == out
    return prefix


def data_flags(prefix, *more):
    return ["--data.source=indexed", f"--data.paths={prefix}", "--data.split=90,10,0", f"--train.seq_len={SEQ}",
            *more]


def train(np_, run_dir, *flags, check=True):
    cmd = [BIN, "train", "--config", CONFIG, "--train.steps=10", f"--train.run_dir={run_dir}", *flags]
    if np_ > 1:
        cmd = MPI + ["-np", str(np_)] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if check:
        assert p.returncode == 0, f"{' '.join(cmd)}\n{p.stdout}\n{p.stderr}"
    return p


def curves(run_dir):
    rows = metrics(run_dir)
    return ([r["lm_loss"] for r in rows if "lm_loss" in r], [r for r in rows if "valid_loss" in r])


def close(a, b, rel=1e-5):
    return len(a) == len(b) and all(abs(x - y) <= rel * abs(y) + 1e-7 for x, y in zip(a, b))


def test_layouts_follow_the_same_curves():
    prefix = make_dataset()
    flags = data_flags(prefix, "--eval.interval=5", "--eval.iters=2")
    one = tmpdir()
    out = train(1, one, *flags).stdout
    assert "data: indexed" in out, out
    losses, valid = curves(one)
    assert len(losses) == 10 and [v["step"] for v in valid] == [5, 10], valid
    # DP2 x TP2; TP2 with EP4 folded over the same ranks; PP2 x DP2 and CP2 x DP2 (the forward-only
    # pipeline schedule and the context-parallel pieces of the validation loss).
    for layout in (["--parallel.tp=2"], ["--parallel.tp=2", "--parallel.ep=4", "--parallel.etp=1"],
                   ["--parallel.pp=2", "--parallel.ep=2"], ["--parallel.cp=2"]):
        d = tmpdir()
        train(4, d, *flags, *layout)
        got, got_valid = curves(d)
        assert close(got, losses), (layout, got, losses)
        assert close([v["valid_loss"] for v in got_valid], [v["valid_loss"] for v in valid]), (layout, got_valid, valid)
        assert [v["valid_tokens"] for v in got_valid] == [v["valid_tokens"] for v in valid]


def test_validation_rows_and_lines_at_the_interval():
    prefix = make_dataset()
    d = tmpdir()
    out = train(1, d, *data_flags(prefix, "--eval.interval=4", "--eval.iters=3", "--train.steps=10")).stdout
    _, valid = curves(d)
    # Every 4 steps and after the last one.
    assert [v["step"] for v in valid] == [4, 8, 10], valid
    for v in valid:
        assert set(v) == {"step", "valid_loss", "valid_ppl", "valid_tokens"}, v
        assert abs(v["valid_ppl"] - math.exp(v["valid_loss"])) <= 1e-9 * v["valid_ppl"], v
        # 3 batches of global_batch = 16 sequences of SEQ targets, every target counted.
        assert v["valid_tokens"] == 3 * 16 * SEQ, v
        assert re.search(rf"step +{v['step']} \| valid loss {v['valid_loss']:.3f} ppl {v['valid_ppl']:.2f}", out), out
    # It learns: the validation loss falls.
    assert valid[-1]["valid_loss"] < valid[0]["valid_loss"], valid
    # at_end = false: only the interval rows.
    d2 = tmpdir()
    train(1, d2, *data_flags(prefix, "--eval.interval=4", "--eval.at_end=false", "--train.steps=10"))
    assert [v["step"] for v in curves(d2)[1]] == [4, 8]


def test_resume_continues_with_the_same_tokens():
    prefix = make_dataset()
    flags = data_flags(prefix, "--eval.interval=5")
    full = tmpdir()
    train(1, full, *flags, "--checkpoint.interval=5")
    losses, valid = curves(full)
    ck = os.path.join(full, "checkpoints", "step-00000005")
    with open(os.path.join(ck, "manifest.json")) as f:
        data = json.load(f)["extra"]["data"]
    assert data["step"] == 5 and data["consumed_samples"] == 5 * 16, data
    assert prefix in data["fingerprint"] and f"seq_len={SEQ}" in data["fingerprint"], data
    res = tmpdir()
    train(1, res, *flags, f"--checkpoint.load={ck}")
    got, got_valid = curves(res)
    assert got == losses[5:], (got, losses[5:])  # bit-identical
    assert [v["valid_loss"] for v in got_valid] == [v["valid_loss"] for v in valid if v["step"] > 5]
    # eval and generate read the checkpoint's data / tokenizer.
    out = run("eval", "--checkpoint", full).stdout
    loss = json.loads(out.strip().splitlines()[-1])["heldout_loss"]
    assert "data: " not in out and "indexed" in out and 0 < loss < 10, out
    out = run("generate", "--checkpoint", full, "--prompt", "abc", "--max-new", "5", "--temperature", "0").stdout
    assert "[0] abc" in out, out


def test_resuming_on_other_data_is_refused():
    prefix = make_dataset()
    other = make_dataset("other", seed=5)
    full = tmpdir()
    train(1, full, *data_flags(prefix), "--train.steps=4")
    ck = os.path.join(full, "checkpoints", "step-00000004")
    for change in ([f"--data.paths={other}"], ["--data.split=80,20,0"], ["--train.seed=5"]):
        res = tmpdir()
        flags = data_flags(prefix) + change
        p = train(1, res, *flags, "--train.steps=6", f"--checkpoint.load={ck}", check=False)
        assert p.returncode != 0, p.stdout
        err = p.stderr
        assert "D24" in err and "allow_different_data" in err, err
        was, now = re.findall(r"^    (indexed .*)$", err, re.M)
        assert was != now and prefix in was, err
        assert not os.path.exists(os.path.join(res, "metrics.jsonl")), os.listdir(res)
    # Asked for on purpose, it continues.
    res = tmpdir()
    train(1, res, *data_flags(other), "--train.steps=6", f"--checkpoint.load={ck}", "--data.allow_different_data=true")
    assert [r["step"] for r in metrics(res)] == [5, 6]


def test_eod_mask_loss_drops_the_positions_reading_an_eod():
    prefix = make_dataset()
    docs = read_megatron(prefix)
    # From the file: every document is DOC_LEN tokens ending in the one <eos>, so any window of SEQ
    # consecutive inputs of the packed stream holds SEQ / DOC_LEN of them.
    assert all(len(d) == DOC_LEN and d[-1] == EOS and EOS not in d[:-1] for d in docs)
    per_row = SEQ // DOC_LEN
    rows = 2 * 16
    counts = {}
    for mask in ("false", "true"):
        d = tmpdir()
        train(1, d, *data_flags(prefix, "--eval.interval=2", "--eval.iters=2", f"--data.eod_mask_loss={mask}"),
              "--train.steps=2")
        counts[mask] = curves(d)[1][0]["valid_tokens"]
    assert counts["false"] == rows * SEQ, counts
    assert counts["true"] == rows * (SEQ - per_row), counts


def test_eod_mask_loss_matches_megatron_core_samples():
    """Documents of random lengths: the validation token counts equal what Megatron's rule gives on the
    valid samples that an independent model of the sampling (tests/e2e/gpt_reference.py, built on
    megatron-core's reader, split parser and sample-index builder) assembles from the files."""
    import random

    from gpt_reference import GptBlend

    prefix = os.path.join(tmpdir(), "ragged")
    rng = random.Random(3)
    docs = [[rng.randrange(3, 98) for _ in range(rng.randrange(2, 20))] + [EOS] for _ in range(500)]
    write_megatron(prefix, docs)
    iters, gbs, seed = 2, 16, 77
    samples = GptBlend([prefix], [], "90,10,0", "valid", SEQ, seed).samples(iters * gbs)
    assert all(len(x) == SEQ + 1 for x in samples)
    masked = sum(x[:SEQ].count(EOS) for x in samples)
    assert masked > 0
    for mask, want in (("false", iters * gbs * SEQ), ("true", iters * gbs * SEQ - masked)):
        d = tmpdir()
        train(1, d, *data_flags(prefix, "--eval.interval=1", f"--eval.iters={iters}", f"--data.eod_mask_loss={mask}"),
              "--train.steps=1")
        assert curves(d)[1][0]["valid_tokens"] == want, (mask, curves(d)[1], want)


def expect_refused(flags, *parts):
    d = os.path.join(tmpdir(), "run")
    p = run("train", "--config", CONFIG, f"--train.run_dir={d}", "--train.steps=2", *flags, check=False)
    assert p.returncode != 0, p.stdout
    for part in parts:
        assert part in p.stderr, (part, p.stderr)
    assert not os.path.exists(d), os.listdir(d)


def test_bad_data_settings_stop_before_the_run_directory():
    prefix = make_dataset()
    expect_refused(["--data.source=indexed", "--data.paths=/nonexistent/corpus"], "D1", "/nonexistent/corpus.bin",
                   "/nonexistent/corpus.idx")
    expect_refused(["--data.source=indexed"], "D8", "[data] paths")
    expect_refused(data_flags(prefix, "--data.weights=0.5,0.5"), "D9", "weights")
    expect_refused(data_flags(prefix, "--data.split=90,x"), "D7", "90,x")
    expect_refused(data_flags(prefix, "--data.split=100,0,0", "--eval.interval=5"), "E1", "[eval] interval = 5")
    expect_refused(data_flags(prefix, "--eval.iters=0"), "V1", "[eval] iters = 0")
    expect_refused(data_flags(prefix, "--model.vocab=50"), "D21", "[model] vocab = 50", "98")
    expect_refused(data_flags(prefix, "--data.tokenizer=/nonexistent/tok.model"), "D23", "/nonexistent/tok.model")
    expect_refused(["--data.paths=" + prefix], "D20", "source = \"synthetic\"")
    # Token ids beyond the vocabulary: a dataset holding id 150 with vocab = 120.
    big = os.path.join(tmpdir(), "big")
    write_megatron(big, [[70] * 40 + [150], [71] * 40 + [EOS]] * 20)
    expect_refused(data_flags(big, "--model.vocab=120"), "D21", "token id 150")


if __name__ == "__main__":
    main([test_layouts_follow_the_same_curves, test_validation_rows_and_lines_at_the_interval,
          test_resume_continues_with_the_same_tokens, test_resuming_on_other_data_is_refused,
          test_eod_mask_loss_drops_the_positions_reading_an_eod, test_eod_mask_loss_matches_megatron_core_samples,
          test_bad_data_settings_stop_before_the_run_directory])
