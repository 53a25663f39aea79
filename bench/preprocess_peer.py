#!/usr/bin/env python3
"""The Python peer of `foldmoe preprocess` for bench/preprocess_bench.sh: JSON lines -> HF tokenizers
(encode_batch, its own thread pool) -> a numpy writer of Megatron's indexed-dataset format (one
sequence per document, uint16 below 65500 ids). Prints one JSON line with its throughput.

  preprocess_peer.py --input F.jsonl --tokenizer tokenizer.json|char --output-prefix P [--append-eod]
                     [--json-key text] [--batch 1000]

`--tokenizer char` builds an HF tokenizer with foldmoe's built-in character vocabulary (docs: data/
tokenizer.h): '<pad>' 0, '<bos>' 1, '<eos>' 2 (also '\n'), ' '..'~' = 3 + code - 32, one token per
character, so both programs must write identical files."""
import argparse
import json
import struct
import sys
import time

import numpy
from tokenizers import Tokenizer, models


def char_tokenizer():
    """A BPE model without merges over the character vocabulary: one token per character (the
    fastest exact form in HF tokenizers; a per-character Split pre-tokenizer is twice as slow)."""
    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2}
    for c in range(32, 127):
        vocab[chr(c)] = 3 + c - 32
    size = len(vocab)
    vocab["\n"] = 2  # '\n' encodes as <eos>
    return Tokenizer(models.BPE(vocab, [], unk_token="<pad>")), 2, size


def write_megatron(prefix, docs, vocab_size):
    dtype = numpy.uint16 if vocab_size < 65500 else numpy.int32
    code = 8 if dtype == numpy.uint16 else 4
    lengths = numpy.array([len(d) for d in docs], dtype=numpy.int32)
    with open(prefix + ".bin", "wb") as f:
        for d in docs:
            f.write(numpy.asarray(d, dtype=dtype).tobytes())
    pointers = numpy.zeros(len(docs), dtype=numpy.int64)
    if len(docs) > 1:
        pointers[1:] = numpy.cumsum(lengths[:-1], dtype=numpy.int64) * numpy.dtype(dtype).itemsize
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00" + struct.pack("<Q", 1) + struct.pack("<B", code))
        f.write(struct.pack("<Q", len(docs)) + struct.pack("<Q", len(docs) + 1))
        f.write(lengths.tobytes() + pointers.tobytes() + numpy.arange(len(docs) + 1, dtype=numpy.int64).tobytes())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--output-prefix", required=True)
    ap.add_argument("--json-key", default="text")
    ap.add_argument("--append-eod", action="store_true")
    ap.add_argument("--batch", type=int, default=1000)
    a = ap.parse_args()
    start = time.perf_counter()
    if a.tokenizer == "char":
        tok, eod, vocab_size = char_tokenizer()
    else:
        tok = Tokenizer.from_file(a.tokenizer)
        eod, vocab_size = tok.token_to_id("</s>") or tok.token_to_id("<|endoftext|>"), tok.get_vocab_size()
    docs, text_bytes, batch = [], 0, []

    def flush():
        for enc in tok.encode_batch(batch, add_special_tokens=False):
            ids = enc.ids
            if a.append_eod:
                ids = ids + [eod]
            docs.append(ids)
        batch.clear()

    with open(a.input, "rb") as f:
        for line in f:
            text_bytes += len(line)
            batch.append(json.loads(line)[a.json_key])
            if len(batch) >= a.batch:
                flush()
    flush()
    write_megatron(a.output_prefix, docs, vocab_size)
    seconds = time.perf_counter() - start
    tokens = sum(len(d) for d in docs)
    print(json.dumps({"documents": len(docs), "tokens": tokens, "seconds": round(seconds, 3),
                      "mb_per_s": round(text_bytes / 1e6 / seconds, 2), "tokens_per_s": round(tokens / seconds)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
