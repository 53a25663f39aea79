"""Indexed datasets against megatron-core's own reader and writer, and GPT samples against an
independent model of the documented semantics (tests/e2e/gpt_reference.py, built on megatron-core's
split parser, sample-index builder and blending):
  - files foldmoe writes load in megatron-core's IndexedDataset with the same tokens and indices,
    and are byte-identical to what megatron-core's IndexedDatasetBuilder writes for the same tokens;
  - files megatron-core writes (uint16 and int32, several sequences per document, empty sequences)
    read identically in foldmoe;
  - GPT samples (several epochs, every split, blends) equal the model's."""
import json
import os
import random
import sys

import numpy
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import megatron_core as mc  # noqa: E402
from e2e_common import main, run, tmpdir  # noqa: E402
from gpt_reference import GptBlend  # noqa: E402


def char_ids(text):
    """The built-in character tokenizer's documented vocabulary: '\n' = 2, ' '..'~' = 3 + code - 32."""
    return [2 if c == "\n" else 3 + ord(c) - 32 for c in text]


def inspect(*args):
    return json.loads(run("inspect-data", *args).stdout)


def megatron_write(prefix, documents, dtype):
    """documents: list of documents, each a list of sequences (lists of ids)."""
    b = mc.IndexedDatasetBuilder(prefix + ".bin", dtype=dtype)
    for doc in documents:
        for seq in doc:
            b.add_item(torch.tensor(seq, dtype=torch.int64))
        b.end_document()
    b.finalize(prefix + ".idx")


def random_texts(rng, n):
    alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFG.,;:!?0123456789\"'\\{}\n"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(n)]


def test_foldmoe_files_load_in_megatron_core():
    d = tmpdir()
    rng = random.Random(7)
    texts = random_texts(rng, 300)
    with open(os.path.join(d, "in.jsonl"), "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t, "id": 1}) + "\n")
    prefix = os.path.join(d, "fm")
    run("preprocess", "--input", os.path.join(d, "in.jsonl"), "--tokenizer", "char", "--output-prefix", prefix,
        "--append-eod", "--workers", "3")
    ds = mc.IndexedDataset(prefix)
    assert ds.index.dtype == numpy.uint16, ds.index.dtype
    assert len(ds) == len(texts)
    assert list(ds.document_indices) == list(range(len(texts) + 1))
    for i, t in enumerate(texts):
        assert ds[i].tolist() == char_ids(t) + [2], (i, t)
    # Byte for byte what megatron-core's builder writes for the same documents.
    megatron_write(os.path.join(d, "mc"), [[char_ids(t) + [2]] for t in texts], numpy.uint16)
    for ext in (".bin", ".idx"):
        with open(prefix + ext, "rb") as a, open(os.path.join(d, "mc") + ext, "rb") as b:
            assert a.read() == b.read(), f"{ext} differs from megatron-core's"


def test_megatron_core_files_read_identically():
    d = tmpdir()
    rng = random.Random(11)
    for dtype, hi in ((numpy.uint16, 65535), (numpy.int32, 2**31 - 1)):
        documents = []
        for _ in range(60):
            documents.append([[rng.randint(0, hi) for _ in range(rng.randint(0, 40))]
                              for _ in range(rng.randint(1, 3))])
        prefix = os.path.join(d, f"mc_{numpy.dtype(dtype).name}")
        megatron_write(prefix, documents, dtype)
        ref = mc.IndexedDataset(prefix)
        got = inspect("--data", prefix, "--sequences")["datasets"][0]
        assert got["dtype"] == numpy.dtype(dtype).name, got["dtype"]
        assert got["document_indices"] == ref.document_indices.tolist()
        assert got["sequence_lengths"] == ref.sequence_lengths.tolist()
        assert got["num_documents"] == len(ref.document_indices) - 1
        assert got["sequences"] == [ref[i].tolist() for i in range(len(ref))]
        assert got["max_token_id"] == max(max(s) for doc in documents for s in doc if s)
    # Megatron's multimodal variant appends one mode byte per sequence to the .idx; the tokens read the same.
    prefix = os.path.join(d, "mm")
    b = mc.IndexedDatasetBuilder(prefix + ".bin", dtype=numpy.uint16, multimodal=True)
    for i, seq in enumerate([[5, 6], [7], [8, 9, 10]]):
        b.add_item(torch.tensor(seq, dtype=torch.int64), mode=i % 2)
        b.end_document()
    b.finalize(prefix + ".idx")
    got = inspect("--data", prefix, "--sequences")["datasets"][0]
    assert got["sequences"] == [[5, 6], [7], [8, 9, 10]], got
    ref = mc.IndexedDataset(prefix, multimodal=True)  # keep it alive: its arrays view its mmap
    assert got["document_indices"] == ref.document_indices.tolist()
    assert ref.index.sequence_modes.tolist() == [0, 1, 0]  # (its .sequence_modes property is broken)


def make_gpt_data(d):
    """Two datasets written by megatron-core: documents of 0..40 tokens (some empty) whose ids are
    distinct, so any misplaced token shows."""
    rng = random.Random(3)
    prefixes = []
    for name, n in (("a", 150), ("b", 70)):
        documents, next_id = [], 1
        for _ in range(n):
            k = rng.choice([0, 1, 2, 5, 9, 17, 25, 40])
            documents.append([list(range(next_id, next_id + k))])
            next_id = (next_id + k) % 60000
        prefix = os.path.join(d, name)
        megatron_write(prefix, documents, numpy.uint16)
        prefixes.append(prefix)
    return prefixes


def compare_gpt(prefixes, weights, split, which, seq_len, seed, epochs):
    ref = GptBlend(prefixes, weights, split, which, seq_len, seed)
    count = int(ref.samples_per_epoch * epochs) + 3
    args = [a for p in prefixes for a in ("--data", p)]
    args += [a for w in weights for a in ("--weights", str(w))]
    got = inspect(*args, "--split", split, "--which", which, "--seq-len", str(seq_len), "--seed", str(seed),
                  "--count", str(count))["gpt"]
    assert got["samples_per_epoch"] == ref.samples_per_epoch, (got["samples_per_epoch"], ref.samples_per_epoch)
    assert [tuple(x) for x in got["locate"]] == ref.locate(count), "blend assignment differs from megatron-core's"
    want = ref.samples(count)
    for i, (g, w) in enumerate(zip(got["samples"], want)):
        assert len(g) == seq_len + 1
        assert g == w, f"sample {i} ({which}, seq_len {seq_len}, seed {seed}): {g} != {w}"


def test_gpt_samples_match_the_model_over_several_epochs():
    d = tmpdir()
    a, _ = make_gpt_data(d)
    for seq_len in (1, 4, 16):
        compare_gpt([a], [], "1", "train", seq_len, 1234, 3.5)
    compare_gpt([a], [], "969,30,1", "train", 8, 5, 2.2)
    compare_gpt([a], [], "80,15,5", "valid", 8, 5, 3)
    compare_gpt([a], [], "80,15,5", "test", 3, 5, 3)


def test_gpt_blend_matches_megatron_blending():
    d = tmpdir()
    prefixes = make_gpt_data(d)
    compare_gpt(prefixes, [0.7, 0.3], "90,10,0", "train", 8, 42, 2.5)
    compare_gpt(prefixes, [], "90,10,0", "valid", 4, 42, 2)


def test_damaged_files_exit_2_naming_file_rule_and_fix():
    d = tmpdir()
    prefix = os.path.join(d, "x")
    megatron_write(prefix, [[[1, 2, 3]], [[4, 5]]], numpy.uint16)
    with open(prefix + ".bin", "r+b") as f:
        f.truncate(6)
    p = run("inspect-data", "--data", prefix, check=False)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "data error D4:" in p.stderr and prefix + ".bin" in p.stderr and "fix:" in p.stderr, p.stderr
    p = run("inspect-data", "--data", os.path.join(d, "missing"), check=False)
    assert p.returncode == 2 and "data error D1:" in p.stderr and "missing.idx" in p.stderr, p.stderr
    megatron_write(prefix, [[[1, 2, 3]], [[4, 5]]], numpy.uint16)
    p = run("inspect-data", "--data", prefix, "--seq-len", "2", "--split", "1,0,0", "--which", "valid", check=False)
    assert p.returncode == 2 and "data error D8:" in p.stderr and "valid split" in p.stderr, p.stderr
    p = run("inspect-data", "--data", prefix, "--seq-len", "2", "--split", "1,x", check=False)
    assert p.returncode == 2 and "data error D7:" in p.stderr, p.stderr


if __name__ == "__main__":
    main([test_damaged_files_exit_2_naming_file_rule_and_fix, test_foldmoe_files_load_in_megatron_core,
          test_megatron_core_files_read_identically,
          test_gpt_samples_match_the_model_over_several_epochs, test_gpt_blend_matches_megatron_blending])
