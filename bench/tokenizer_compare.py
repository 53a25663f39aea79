#!/usr/bin/env python3
"""Tokenizer throughput: foldmoe's tokenizer.json implementation vs HF `tokenizers` (Rust), one
thread each, on the same text (every line of the KJV bible, Debian bible-kjv), in one run.

    .venv/bin/python bench/tokenizer_compare.py [build/foldmoe] [--kinds gpt2,llama3,qwen2,llama2]

The tokenizers are trained on the spot (tests/e2e/tokenizer_fixtures.py, vocab 3000/2000). HF runs
`encode_batch_fast(lines, add_special_tokens=False)` (no offsets: its fastest path) with RAYON_NUM_THREADS=1 and
TOKENIZERS_PARALLELISM=false; foldmoe runs `foldmoe tokenize --stats` (encode every line once,
timed inside the process, file reading and loading excluded; HF's timing likewise excludes them).
Both see a cold word cache. The token counts must agree (the run fails otherwise). Prints one line
per tokenizer and a JSON summary: MB/s and tokens/s of both, and foldmoe / HF."""
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))

import tokenizer_fixtures as fx  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--kinds")]
    binary = args[0] if args else "build/foldmoe"
    kinds = ["gpt2", "llama3", "qwen2", "llama2"]
    for a in sys.argv[1:]:
        if a.startswith("--kinds="):
            kinds = a.split("=", 1)[1].split(",")
    work = tempfile.mkdtemp(prefix="foldmoe-tokbench-")
    paths = fx.hf_tokenizers(work)
    lines = fx.bible_lines()
    text_file = os.path.join(work, "kjv.txt")
    with open(text_file, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    nbytes = sum(len(s.encode()) for s in lines)
    summary = {}
    for kind in kinds:
        hf = Tokenizer.from_file(paths[kind])
        t0 = time.perf_counter()
        enc = hf.encode_batch_fast(lines, add_special_tokens=False)
        hf_s = time.perf_counter() - t0
        hf_tokens = sum(len(e.ids) for e in enc)
        out = subprocess.run([binary, "tokenize", "--tokenizer", paths[kind], "--input", text_file, "--stats"],
                             capture_output=True, text=True, check=True)
        fm = json.loads(out.stdout.strip().splitlines()[-1])
        assert fm["tokens"] == hf_tokens, f"{kind}: foldmoe made {fm['tokens']} tokens, HF {hf_tokens}"
        assert fm["bytes"] == nbytes, (fm["bytes"], nbytes)
        row = {
            "foldmoe_MBps": nbytes / fm["seconds"] / 1e6, "hf_MBps": nbytes / hf_s / 1e6,
            "foldmoe_tokens_per_s": hf_tokens / fm["seconds"], "hf_tokens_per_s": hf_tokens / hf_s,
        }
        row["ratio"] = row["foldmoe_MBps"] / row["hf_MBps"]
        summary[kind] = row
        print(f"{kind:8s} {nbytes / 1e6:.1f} MB, {hf_tokens} tokens: foldmoe {row['foldmoe_MBps']:.2f} MB/s "
              f"({row['foldmoe_tokens_per_s'] / 1e6:.2f} M tok/s), HF tokenizers {row['hf_MBps']:.2f} MB/s "
              f"({row['hf_tokens_per_s'] / 1e6:.2f} M tok/s), ratio {row['ratio']:.2f}x", flush=True)
    print(json.dumps({"text": "KJV bible", "bytes": nbytes, "threads": 1, "tokenizers": summary}))


if __name__ == "__main__":
    main()
