"""`foldmoe preprocess` end to end, its output checked with megatron-core's IndexedDataset reader
against the documented character vocabulary: JSON lines (plain and gzip), plain text, one document
per file, any number of workers giving the same bytes, and each kind of bad input (D6, D11-D14)
reported as file:line with a fix, never leaving a half-written PREFIX.bin/.idx behind."""
import gzip
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import megatron_core as mc  # noqa: E402
from e2e_common import main, run, tmpdir  # noqa: E402


def char_ids(text):
    """The built-in character tokenizer's documented vocabulary: '\n' = 2, ' '..'~' = 3 + code - 32."""
    return [2 if c == "\n" else 3 + ord(c) - 32 for c in text]


TEXTS = ["In the beginning God created the heaven and the earth.", "And the earth was without form, and void;",
         "line with \"quotes\" and a \\ backslash", "two\nlines", "x"] * 40


def sequences(prefix):
    ds = mc.IndexedDataset(prefix)
    assert list(ds.document_indices) == list(range(len(ds) + 1))
    return [ds[i].tolist() for i in range(len(ds))]


def write_jsonl(path, texts, opener=open):
    with opener(path, "wt") as f:
        for t in texts:
            f.write(json.dumps({"id": 0, "text": t}) + "\n")


def leftovers(d, stem):
    return sorted(f for f in os.listdir(d) if f.startswith(stem))


def preprocess(*args, check=True):
    return run("preprocess", "--tokenizer", "char", "--progress", "off", *args, check=check)


def test_jsonl_plain_and_gzip_any_workers_same_bytes():
    d = tmpdir()
    write_jsonl(os.path.join(d, "in.jsonl"), TEXTS)
    write_jsonl(os.path.join(d, "in.jsonl.gz"), TEXTS, opener=gzip.open)
    outputs = []
    for name, inp, workers in (("w1", "in.jsonl", 1), ("w4", "in.jsonl", 4), ("gz", "in.jsonl.gz", 3)):
        p = preprocess("--input", os.path.join(d, inp), "--output-prefix", os.path.join(d, name), "--append-eod",
                       "--workers", str(workers))
        assert f"{len(TEXTS)} documents" in p.stderr and "MB/s" in p.stderr and "tokens/s" in p.stderr, p.stderr
        assert sequences(os.path.join(d, name)) == [char_ids(t) + [2] for t in TEXTS]
        outputs.append(tuple(open(os.path.join(d, name) + e, "rb").read() for e in (".bin", ".idx")))
    assert outputs[0] == outputs[1] == outputs[2]
    # Without --append-eod no eos is added; --json-key picks another key.
    with open(os.path.join(d, "k.jsonl"), "w") as f:
        for t in TEXTS[:5]:
            f.write(json.dumps({"body": t}) + "\n")
    preprocess("--input", os.path.join(d, "k.jsonl"), "--json-key", "body", "--output-prefix", os.path.join(d, "k"))
    assert sequences(os.path.join(d, "k")) == [char_ids(t) for t in TEXTS[:5]]


def test_text_lines_and_one_document_per_file():
    d = tmpdir()
    with open(os.path.join(d, "in.txt"), "w") as f:
        f.write("first line\n\nsecond line\r\n   \nthird")
    preprocess("--input", os.path.join(d, "in.txt"), "--input-format", "text", "--output-prefix",
               os.path.join(d, "t"), "--append-eod")
    assert sequences(os.path.join(d, "t")) == [char_ids(t) + [2] for t in ("first line", "second line", "third")]
    docs = os.path.join(d, "docs")
    os.makedirs(os.path.join(docs, "sub"))
    files = {"b.txt": "bee\nbee", "a.txt": "ay", os.path.join("sub", "c.txt"): "sea"}
    for name, text in files.items():
        with open(os.path.join(docs, name), "w") as f:
            f.write(text)
    preprocess("--input", docs, "--document", "per-file", "--output-prefix", os.path.join(d, "f"))
    assert sequences(os.path.join(d, "f")) == [char_ids(files[n]) for n in sorted(files)]


def expect_error(args, rule, *needles):
    p = preprocess(*args, check=False)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert f"data error {rule}:" in p.stderr, p.stderr
    assert "fix:" in p.stderr, p.stderr
    for n in needles:
        assert n in p.stderr, (n, p.stderr)
    return p.stderr


def test_bad_lines_name_file_and_line_and_can_be_skipped():
    d = tmpdir()
    good = json.dumps({"text": "ok"})
    cases = [("not json", "{oops", "D11", "not valid JSON"),
             ("missing key", json.dumps({"body": "x"}), "D11", 'no "text" key'),
             ("not a string", json.dumps({"text": ["a", "b"]}), "D11", "not a string"),
             ("not an object", json.dumps(["text"]), "D11", "not an object"),
             ("empty text", json.dumps({"text": ""}), "D6", "empty document")]
    for i, (_, bad, rule, what) in enumerate(cases):
        path = os.path.join(d, f"bad{i}.jsonl")
        with open(path, "w") as f:
            f.write("\n".join([good, good, bad, good]) + "\n")
        prefix = os.path.join(d, f"out{i}")
        expect_error(["--input", path, "--output-prefix", prefix], rule, f"{path}:3", what)
        assert leftovers(d, f"out{i}") == [], leftovers(d, f"out{i}")
        p = preprocess("--input", path, "--output-prefix", prefix, "--skip-bad-lines")
        assert "1 bad lines skipped" in p.stderr, p.stderr
        assert sequences(prefix) == [char_ids("ok")] * 3
    path = os.path.join(d, "utf8.jsonl")
    with open(path, "wb") as f:
        f.write(b'{"text": "fine"}\n{"text": "bad \xff byte"}\n')
    expect_error(["--input", path, "--output-prefix", os.path.join(d, "u")], "D11", f"{path}:2", "UTF-8")
    # A character the tokenizer cannot encode is a bad line too.
    path = os.path.join(d, "enc.jsonl")
    with open(path, "w") as f:
        f.write(json.dumps({"text": "caf\u00e9"}) + "\n")
    expect_error(["--input", path, "--output-prefix", os.path.join(d, "e")], "D11", f"{path}:1", "cannot encode")


def test_outputs_are_never_clobbered_or_half_written():
    d = tmpdir()
    path = os.path.join(d, "in.jsonl")
    write_jsonl(path, TEXTS[:10])
    prefix = os.path.join(d, "out")
    preprocess("--input", path, "--output-prefix", prefix)
    before = open(prefix + ".bin", "rb").read()
    write_jsonl(path, TEXTS[10:30])
    expect_error(["--input", path, "--output-prefix", prefix], "D12", prefix + ".bin", "--overwrite")
    assert open(prefix + ".bin", "rb").read() == before
    # A failing run with --overwrite keeps the old pair.
    with open(path, "a") as f:
        f.write("{broken\n")
    expect_error(["--input", path, "--output-prefix", prefix, "--overwrite"], "D11", f"{path}:21")
    assert open(prefix + ".bin", "rb").read() == before
    assert leftovers(d, "out") == ["out.bin", "out.idx"], leftovers(d, "out")
    expect_error(["--input", path, "--output-prefix", os.path.join(d, "no", "such", "out")], "D12",
                 os.path.join(d, "no", "such", "out"), "writable folder")
    preprocess("--input", path, "--output-prefix", prefix, "--overwrite", "--skip-bad-lines")
    assert sequences(prefix) == [char_ids(t) for t in TEXTS[10:30]]


def test_unreadable_inputs():
    d = tmpdir()
    expect_error(["--input", os.path.join(d, "nope.jsonl"), "--output-prefix", os.path.join(d, "o")], "D14",
                 "nope.jsonl")
    expect_error(["--input", d, "--output-prefix", os.path.join(d, "o")], "D14", "per-file")
    gz = os.path.join(d, "cut.jsonl.gz")
    data = gzip.compress(("\n".join(json.dumps({"text": t}) for t in TEXTS) + "\n").encode())
    with open(gz, "wb") as f:
        f.write(data[: len(data) // 2])
    expect_error(["--input", gz, "--output-prefix", os.path.join(d, "o")], "D14", gz)
    empty = os.path.join(d, "empty.jsonl")
    open(empty, "w").close()
    expect_error(["--input", empty, "--output-prefix", os.path.join(d, "o")], "D14", "no documents")
    assert leftovers(d, "o") == [], leftovers(d, "o")


if __name__ == "__main__":
    main([test_jsonl_plain_and_gzip_any_workers_same_bytes, test_text_lines_and_one_document_per_file,
          test_bad_lines_name_file_and_line_and_can_be_skipped, test_outputs_are_never_clobbered_or_half_written,
          test_unreadable_inputs])
