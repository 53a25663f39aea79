"""`foldmoe logprobs` (docs/logprobs.md):
  - on a tiny random HF model (qwen3_moe), the log-probs equal transformers in float64 on the same
    directory to 1e-5 relative, the --logits equal its logits, log_softmax of the written logits
    gives the written log-probs (1e-6), tokens.i are the input, the metadata count/vocab/mean NLL;
  - every layout (TP2, EP2, PP2, DP2, CP2, TP2xEP2 folded, TP2xDP2xEP4, TP2xPP2xEP2, interleaved
    PP2 with vpp 2, DP2xPP2(vpp 2)xEP2) gives the
    one-process values (log-probs and logits) to 1e-6, on the HF directory and on a foldmoe-trained
    checkpoint; sequences of different lengths, an odd count under DP;
  - --text-input (strings and {"text": ...}) equals --input with the ids it encodes to, with the
    char tokenizer of a foldmoe checkpoint (<bos> first) and an HF directory's tokenizer.json (the
    ids of the tokenizers library);
  - each bad input exits non-zero with its rule id (E2-E8) and writes nothing; an existing output is
    refused without --overwrite and replaced with it, atomically (no temporary file left)."""
import json
import os

import torch

from e2e_common import main, run, tmpdir
from test_hf_directory_commands import hf_dir_with_tokenizer
from hf_parity import (LAYOUTS, check_layouts, foldmoe_command, foldmoe_logprobs, logprobs_of, make,
                       max_rel_err, mean_nll, random_sequences, read_output, reference_logprobs, write_jsonl)

VOCAB = 160
SEQS = random_sequences(VOCAB, [9, 2, 31, 16, 5], seed=7)
_STATE = {}


def hf_dir():
    if "hf" not in _STATE:
        _STATE["hf"] = make("qwen3_moe", num_hidden_layers=4)
    return _STATE["hf"]


def trained_checkpoint():
    if "ckpt" not in _STATE:
        d = tmpdir()
        run("train", "--train.steps=3", f"--train.run_dir={d}", "--log.progress=off")
        _STATE["ckpt"] = f"{d}/checkpoints/step-00000003"
    return _STATE["ckpt"]


def test_equal_float64_reference():
    tensors, meta = foldmoe_logprobs(hf_dir(), SEQS, logits=True)
    n = len(SEQS)
    assert meta["count"] == str(n) and meta["vocab"] == str(VOCAB) and meta["logits"] == "true", meta
    assert sorted(tensors) == sorted(f"{k}.{i}" for k in ("tokens", "logprobs", "logits") for i in range(n))
    want_lp, want_lg = reference_logprobs(hf_dir(), SEQS)
    got_lp = logprobs_of((tensors, meta), n)
    for i, s in enumerate(SEQS):
        assert tensors[f"tokens.{i}"].tolist() == s
        assert tensors[f"logprobs.{i}"].dtype == torch.float32 and tensors[f"logprobs.{i}"].shape == (len(s) - 1,)
        assert tensors[f"logits.{i}"].dtype == torch.float32 and tensors[f"logits.{i}"].shape == (len(s) - 1, VOCAB)
    err = max_rel_err(got_lp, want_lp)
    assert err <= 1e-5, f"log-probs differ from transformers (float64) by {err:.3e} relative"
    lg_err = max((tensors[f"logits.{i}"].double() - want_lg[i]).abs().max().item() /
                 want_lg[i].abs().max().item() for i in range(n))
    assert lg_err <= 1e-5, f"logits differ from transformers (float64) by {lg_err:.3e} of the largest logit"
    # The written logits and log-probs agree: log_softmax(logits)[next token].
    cons = 0.0
    for i, s in enumerate(SEQS):
        lsm = torch.log_softmax(tensors[f"logits.{i}"].double(), -1).gather(1, torch.tensor(s[1:])[:, None])[:, 0]
        cons = max(cons, max_rel_err([tensors[f"logprobs.{i}"]], [lsm]))
    assert cons <= 1e-6, f"log_softmax of the written logits differs from the log-probs by {cons:.3e}"
    nll_err = abs(float(meta["mean_nll"]) - mean_nll(want_lp)) / mean_nll(want_lp)
    assert nll_err <= 1e-6, (meta["mean_nll"], mean_nll(want_lp))
    print(f"  vs float64 transformers: logprobs {err:.2e} rel, logits {lg_err:.2e}, log_softmax consistency "
          f"{cons:.2e}, mean NLL {nll_err:.2e}", flush=True)


def test_layouts_equal_one_process():
    interleaved = {"pp2_vpp2": (2, ["--parallel.pp=2", "--parallel.vpp=2"]),
                   "dp2_pp2_vpp2_ep2": (4, ["--parallel.pp=2", "--parallel.vpp=2", "--parallel.ep=2"])}
    check_layouts(hf_dir(), SEQS, LAYOUTS | interleaved, tol=1e-6, label="qwen3_moe HF dir, with logits",
                  logits=True)
    # Fewer sequences than DP ranks: the idle rank scores a copy and discards it.
    check_layouts(hf_dir(), SEQS[:1], {k: LAYOUTS[k] for k in ("dp2", "tp2_dp2_ep4")}, tol=1e-6,
                  label="one sequence")
    ckpt_seqs = random_sequences(98, [13, 4, 21], seed=1)
    check_layouts(trained_checkpoint(), ckpt_seqs,
                  {k: LAYOUTS[k] for k in ("tp2", "ep2", "pp2", "dp2", "cp2", "tp2_ep2", "tp2_pp2_ep2")},
                  tol=1e-6, label="foldmoe checkpoint")


def test_text_input_equals_token_input():
    work = tmpdir()
    texts = write_jsonl(f"{work}/text.jsonl", ["add:12+345=357", {"text": "reverse:abc=cba"}])
    out = f"{work}/text.safetensors"
    run("logprobs", "--checkpoint", trained_checkpoint(), "--text-input", texts, "--output", out)
    by_text, meta = read_output(out)
    ids = [by_text[f"tokens.{i}"].tolist() for i in range(2)]
    assert len(ids[0]) == 1 + len("add:12+345=357"), ids  # the document-start token, then one per character
    by_ids, _ = foldmoe_logprobs(trained_checkpoint(), ids)
    for i in range(2):
        assert torch.equal(by_text[f"logprobs.{i}"], by_ids[f"logprobs.{i}"])
    # A Hugging Face directory's tokenizer.json (this one defines no bos: nothing is prepended).
    d, tok, work = hf_dir_with_tokenizer("llama")
    texts = ["In the beginning was the word", "hello world"]
    inp = write_jsonl(f"{work}/text.jsonl", [texts[0], {"text": texts[1]}])
    run("logprobs", "--checkpoint", d, "--text-input", inp, "--output", f"{work}/out.safetensors")
    by_text, _ = read_output(f"{work}/out.safetensors")
    ids = [tok.encode(t).ids for t in texts]
    assert [by_text[f"tokens.{i}"].tolist() for i in range(2)] == ids
    by_ids, _ = foldmoe_logprobs(d, ids)
    for i in range(2):
        assert torch.equal(by_text[f"logprobs.{i}"], by_ids[f"logprobs.{i}"])


def expect_error(rule, *args, out=None, np_=1):
    p = foldmoe_command(np_, *args, check=False)
    text = p.stdout + p.stderr
    assert p.returncode != 0, f"{args}: exited 0\n{text}"
    assert f"error {rule}:" in text, f"{args}: expected rule {rule}\n{text}"
    if out is not None:
        assert not os.path.exists(out), f"{args}: wrote {out}"
        assert not [f for f in os.listdir(os.path.dirname(out)) if ".tmp-" in f], "temporary file left"
    return text


def test_bad_input_is_refused_before_any_work():
    work = tmpdir()
    out = f"{work}/out.safetensors"
    d = hf_dir()

    def lines(name, text):
        with open(f"{work}/{name}", "w") as f:
            f.write(text)
        return f"{work}/{name}"

    cases = [
        ("E2", ["--input", f"{work}/missing.jsonl"], "missing.jsonl"),
        ("E2", ["--input", lines("empty.jsonl", "\n  \n")], "holds no sequence"),
        ("E2", [], "--input"),
        ("E2", ["--input", work], "is a directory"),
        ("E3", ["--input", lines("bad.jsonl", "[1, 2, 3]\n\n[4, 5\n")], "bad.jsonl:3"),
        ("E3", ["--input", lines("float.jsonl", "[1, 2.5]\n")], "float.jsonl:1"),
        ("E3", ["--input", lines("object.jsonl", '{"ids": [1, 2]}\n')], "object.jsonl:1"),
        ("E4", ["--input", lines("big.jsonl", f"[1, 2]\n[3, {VOCAB}]\n")], "big.jsonl:2"),
        ("E4", ["--input", lines("neg.jsonl", "[1, -4, 2]\n")], "neg.jsonl:1"),
        ("E5", ["--input", lines("one.jsonl", "[1, 2]\n[7]\n")], "one.jsonl:2"),
        ("E5", ["--input", lines("none.jsonl", "[]\n")], "none.jsonl:1"),
        ("E6", ["--input", lines("long.jsonl", json.dumps([1] * 257) + "\n")], "max_seq_len = 256"),
        ("E7", ["--text-input", lines("text.jsonl", '"hello"\n')], "tokenizer.json"),
    ]
    for rule, args, named in cases:
        text = expect_error(rule, "logprobs", "--checkpoint", d, *args, "--output", out, out=out)
        assert named in text, f"{rule} {args}: the message does not name {named!r}\n{text}"
    # The same checks under mpirun: one message, non-zero exit, nothing written.
    expect_error("E4", "logprobs", "--checkpoint", d, "--input", f"{work}/big.jsonl", "--output", out,
                 "--parallel.tp=2", out=out, np_=2)
    good = lines("good.jsonl", "[1, 2, 3]\n")
    expect_error("E8", "logprobs", "--checkpoint", d, "--input", good, "--output", f"{work}/no/such/dir/out.safetensors")
    expect_error("E8", "logprobs", "--checkpoint", d, "--input", good, "--output", work)
    # generate --prompt-ids checks its ids too.
    expect_error("E4", "generate", "--checkpoint", d, "--prompt-ids", f"1,{VOCAB + 5}", "--max-new", "2")


def test_existing_output_needs_overwrite():
    work = tmpdir()
    out = f"{work}/out.safetensors"
    with open(out, "w") as f:
        f.write("the user's file")
    inp = write_jsonl(f"{work}/tokens.jsonl", SEQS[:2])
    expect_error("E8", "logprobs", "--checkpoint", hf_dir(), "--input", inp, "--output", out)
    with open(out) as f:
        assert f.read() == "the user's file"
    run("logprobs", "--checkpoint", hf_dir(), "--input", inp, "--output", out, "--overwrite")
    tensors, meta = read_output(out)
    assert meta["count"] == "2" and sorted(os.listdir(work)) == ["out.safetensors", "tokens.jsonl"]


if __name__ == "__main__":
    main([test_equal_float64_reference, test_layouts_equal_one_process, test_text_input_equals_token_input,
          test_bad_input_is_refused_before_any_work, test_existing_output_needs_overwrite])
