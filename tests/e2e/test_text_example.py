"""The real-text example (scripts/text-example.sh) end to end, shortened to 20 steps and a 500-piece
tokenizer: the Bible becomes JSONL, a SentencePiece model and an indexed dataset whose documents
decode (with the sentencepiece Python package, not foldmoe) back to the chapters; training writes
validation rows at the interval; the plot and a sample continuation come out."""
import json
import os
import struct
import subprocess

import sentencepiece

from e2e_common import BIN, ENV, ROOT, main, metrics, tmpdir


def read_docs(prefix):
    with open(prefix + ".idx", "rb") as f:
        raw = f.read()
    assert raw[:9] == b"MMIDIDX\x00\x00", raw[:9]
    (code,) = struct.unpack_from("<B", raw, 17)
    (n,) = struct.unpack_from("<Q", raw, 18)
    lengths = struct.unpack_from(f"<{n}i", raw, 34)
    fmt, size = {8: ("H", 2), 4: ("i", 4), 1: ("B", 1)}[code]
    with open(prefix + ".bin", "rb") as f:
        data = f.read()
    tokens = struct.unpack(f"<{len(data) // size}{fmt}", data)
    docs, p = [], 0
    for length in lengths:
        docs.append(list(tokens[p:p + length]))
        p += length
    return docs


def test_text_example_smoke():
    out = tmpdir()
    env = dict(ENV, FOLDMOE=os.path.abspath(BIN), OUT=out, VOCAB="500")
    p = subprocess.run([os.path.join(ROOT, "scripts", "text-example.sh"), "--train.steps=20", "--eval.interval=10",
                        "--log.interval=10"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    data = os.path.join(out, "data")
    chapters = [json.loads(line)["text"] for line in open(os.path.join(data, "kjv.jsonl"), encoding="utf-8")]
    assert len(chapters) == 1189 and chapters[0].startswith("In the beginning God created"), chapters[0][:60]
    sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(data, "kjv.model"))
    docs = read_docs(os.path.join(data, "kjv_text_document"))
    assert len(docs) == len(chapters)
    for i in (0, 1, 500, len(docs) - 1):
        assert docs[i][-1] == sp.eos_id(), docs[i][-5:]
        assert docs[i][:-1] == sp.encode(chapters[i]), i
        assert sp.decode(docs[i][:-1]) == chapters[i]
    rows = metrics(os.path.join(out, "run"))
    valid = [r for r in rows if "valid_loss" in r]
    assert [r["step"] for r in valid] == [10, 20], valid
    assert valid[-1]["valid_loss"] < valid[0]["valid_loss"], valid
    assert "valid loss" in p.stdout and "data: indexed" in p.stdout, p.stdout
    assert os.path.getsize(os.path.join(out, "loss.png")) > 1000
    assert "And God said" in p.stdout.splitlines()[-1], p.stdout[-500:]


if __name__ == "__main__":
    main([test_text_example_smoke])
