"""`foldmoe tokenize` against the real libraries. Tokenizers are trained here
(tests/e2e/tokenizer_fixtures.py): HF byte-level BPEs with the GPT-2, Llama-3 and Qwen2 regexes,
SentencePiece-style BPEs with byte fallback (Metaspace; Llama-2/Mistral Prepend+Replace), and
spm_train .model files (bpe, unigram). On thousands of lines (KJV bible, Unicode samples, random
strings with a fixed seed) foldmoe's ids must equal HF `encode(text, add_special_tokens=False).ids`
or SentencePiece's `encode(text)`, and its decode must equal HF `decode(ids,
skip_special_tokens=False)` / SentencePiece `decode(ids)`, also for random id lists. Broken and
unsupported files are refused with their rule id."""
import json
import os
import random
import subprocess

import sentencepiece as spm
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

import tokenizer_fixtures as fx
from e2e_common import main, run, tmpdir

WORK = tmpdir()
HF = fx.hf_tokenizers(WORK)
SPM = fx.spm_models(WORK)
TEXTS = fx.bible_lines()[1::7][:3000] + fx.UNICODE_LINES + fx.random_strings(1500)


def write_json(name, value):
    path = os.path.join(WORK, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False)
    return path


def foldmoe_encode(tokenizer, texts):
    out = run("tokenize", "--tokenizer", tokenizer, "--json", "--input", write_json("texts.json", texts)).stdout
    return [json.loads(line) for line in out.splitlines()]


def foldmoe_decode(tokenizer, id_lists):
    out = run("tokenize", "--tokenizer", tokenizer, "--json", "--decode", "--input",
              write_json("ids.json", id_lists)).stdout
    return [json.loads(line) for line in out.splitlines()]


def assert_same(what, texts, got, want):
    assert len(got) == len(want), f"{what}: {len(got)} results for {len(want)} inputs"
    bad = [i for i in range(len(want)) if got[i] != want[i]]
    assert not bad, (f"{what}: {len(bad)} of {len(want)} differ; first: {texts[bad[0]]!r}\n"
                     f"  reference {want[bad[0]]}\n  foldmoe   {got[bad[0]]}")


def random_id_lists(vocab_size, n=500, seed=7):
    rng = random.Random(seed)
    return [[rng.randrange(vocab_size) for _ in range(rng.randint(0, 12))] for _ in range(n)]


def test_hf_tokenizer_json_encode_and_decode_match_hf():
    for name, path in HF.items():
        hf = Tokenizer.from_file(path)
        want = [e.ids for e in hf.encode_batch(TEXTS, add_special_tokens=False)]
        assert_same(f"{name} encode", TEXTS, foldmoe_encode(path, TEXTS), want)
        assert sum(map(len, want)) > 100000  # the comparison covers real volume
        ids = want + random_id_lists(hf.get_vocab_size(with_added_tokens=True))
        decoded = [hf.decode(i, skip_special_tokens=False) for i in ids]
        assert_same(f"{name} decode", ids, foldmoe_decode(path, ids), decoded)


def test_component_variants_match_hf():
    # The trained models under other settings of their stages: what real files also use.
    def variant(base, **stages):
        tok = Tokenizer.from_file(HF[base])
        for k, v in stages.items():
            setattr(tok, k, v)
        return tok
    variants = {
        "bytelevel-prefix-space": variant("gpt2", pre_tokenizer=pre_tokenizers.ByteLevel(add_prefix_space=True)),
        "metaspace-always": variant("metaspace", pre_tokenizer=pre_tokenizers.Metaspace(prepend_scheme="always"),
                                    decoder=decoders.Metaspace(prepend_scheme="always")),
        "metaspace-never-nosplit": variant("metaspace", decoder=decoders.Metaspace(prepend_scheme="never"),
                                           pre_tokenizer=pre_tokenizers.Metaspace(prepend_scheme="never", split=False)),
        "digits-contiguous": variant("qwen2", normalizer=normalizers.NFKC(), pre_tokenizer=pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=False),
            pre_tokenizers.Split(Regex(r"\s+"), behavior="merged_with_previous"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])),
        "nfd-lowercase-nodecoder": variant("llama3", normalizer=normalizers.Sequence([normalizers.NFD(),
                                                                                     normalizers.Lowercase()]),
                                           decoder=None),
    }
    texts = TEXTS[::3]
    for name, tok in variants.items():
        path = os.path.join(WORK, f"variant-{name}.json")
        tok.save(path)
        want = [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
        assert_same(f"{name} encode", texts, foldmoe_encode(path, texts), want)
        ids = want[:500] + random_id_lists(tok.get_vocab_size(with_added_tokens=True), n=200)
        assert_same(f"{name} decode", ids, foldmoe_decode(path, ids),
                    [tok.decode(i, skip_special_tokens=False) for i in ids])


def test_sentencepiece_model_encode_and_decode_match_sentencepiece():
    for name, path in SPM.items():
        sp = spm.SentencePieceProcessor(model_file=path)
        want = [sp.encode(t) for t in TEXTS]
        assert_same(f"spm {name} encode", TEXTS, foldmoe_encode(path, TEXTS), want)
        ids = want + random_id_lists(sp.get_piece_size())
        assert_same(f"spm {name} decode", ids, foldmoe_decode(path, ids), [sp.decode(i) for i in ids])


def info(spec):
    return json.loads(run("tokenize", "--tokenizer", spec, "--info").stdout)


def test_special_ids_come_from_the_files():
    # A model directory: tokenizer.json + tokenizer_config.json (string and {content} forms).
    d = os.path.join(WORK, "qwen-dir")
    os.makedirs(d)
    hf = Tokenizer.from_file(HF["qwen2"])
    hf.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": None, "eos_token": {"content": "<|im_end|>", "special": True},
                   "pad_token": "<|endoftext|>"}, f)
    got = info(d)
    assert got["vocab_size"] == hf.get_vocab_size(with_added_tokens=True), got
    assert (got["bos_id"], got["eos_id"], got["pad_id"]) == (None, hf.token_to_id("<|im_end|>"),
                                                             hf.token_to_id("<|endoftext|>")), got
    # Without tokenizer_config.json: the post-processor's template names bos (and eos after $A);
    # encode never applies it, so HF's ids with special tokens are ours with bos/eos around.
    llama = Tokenizer.from_file(HF["llama2"])
    llama.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", llama.token_to_id("<s>"))])
    gpt = Tokenizer.from_file(HF["gpt2"])
    gpt.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|im_start|> $A <|im_end|>", special_tokens=[
            ("<|im_start|>", gpt.token_to_id("<|im_start|>")), ("<|im_end|>", gpt.token_to_id("<|im_end|>"))])])
    for name, tok, bos, eos in (("llama2", llama, "<s>", None), ("gpt2", gpt, "<|im_start|>", "<|im_end|>")):
        d = os.path.join(WORK, f"{name}-template")
        os.makedirs(d)
        tok.save(os.path.join(d, "tokenizer.json"))
        got = info(d)
        want_eos = tok.token_to_id(eos) if eos else None
        assert (got["bos_id"], got["eos_id"], got["pad_id"]) == (tok.token_to_id(bos), want_eos, None), (name, got)
        unk = json.loads(tok.to_str())["model"]["unk_token"]
        assert got["unk_id"] == (tok.token_to_id(unk) if unk else None), (name, got)
        texts = fx.UNICODE_LINES
        ours = foldmoe_encode(d, texts)
        assert ours == [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)], name
        tail = [want_eos] if eos else []
        assert [[got["bos_id"]] + ids + tail for ids in ours] == [e.ids for e in tok.encode_batch(texts)], name
    for name, path in SPM.items():
        sp = spm.SentencePieceProcessor(model_file=path)
        got = info(path)
        want = [i if i >= 0 else None for i in (sp.bos_id(), sp.eos_id(), sp.pad_id(), sp.unk_id())]
        assert [got["bos_id"], got["eos_id"], got["pad_id"], got["unk_id"]] == want, (name, got, want)
        assert got["vocab_size"] == sp.get_piece_size()


def refused(spec, *needles):
    p = run("tokenize", "--tokenizer", spec, "--text", "hello", check=False)
    assert p.returncode == 2, f"{spec}: exit {p.returncode}\n{p.stdout}{p.stderr}"
    for n in needles:
        assert n in p.stderr, f"{spec}: {n!r} not in {p.stderr!r}"


def test_unsupported_and_broken_files_are_refused_with_their_rule():
    # Models HF can build but foldmoe does not implement.
    wp = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    wp.save(os.path.join(WORK, "wordpiece.json"))
    refused(os.path.join(WORK, "wordpiece.json"), "error K5", "model.type", "WordPiece")
    uni = Tokenizer(models.Unigram([("<unk>", 0.0), ("a", -1.0), ("b", -2.0)], unk_id=0))
    uni.save(os.path.join(WORK, "unigram.json"))
    refused(os.path.join(WORK, "unigram.json"), "error K5", "Unigram")
    ws = Tokenizer.from_file(HF["gpt2"])
    ws.pre_tokenizer = pre_tokenizers.Whitespace()
    ws.save(os.path.join(WORK, "whitespace.json"))
    refused(os.path.join(WORK, "whitespace.json"), "error K5", "pre_tokenizer.type", "Whitespace")
    # Broken files.
    with open(HF["gpt2"], encoding="utf-8") as f:
        j = json.load(f)
    j["pre_tokenizer"] = {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": False}
    refused(write_json("badregex.json", j), "error K6", "pre_tokenizer.pattern")
    with open(HF["gpt2"], encoding="utf-8") as f:
        j = json.load(f)
    j["model"]["merges"][5] = "nosuchtoken Ġ"
    refused(write_json("badmerge.json", j), "error K7", "merge 5")
    j["model"]["merges"][5] = "a b c"
    refused(write_json("badmerge2.json", j), "error K7", "model.merges[5]")
    with open(HF["gpt2"], encoding="utf-8") as f:
        text = f.read()
    with open(os.path.join(WORK, "truncated.json"), "w", encoding="utf-8") as f:
        f.write(text[: len(text) // 2])
    refused(os.path.join(WORK, "truncated.json"), "error K4", "not valid JSON")
    with open(os.path.join(WORK, "garbage.model"), "wb") as f:
        f.write(b"\x00not a sentencepiece model")
    refused(os.path.join(WORK, "garbage.model"), "error K1", "garbage.model")
    refused(os.path.join(WORK, "no-such-file.json"), "error K3")
    empty = os.path.join(WORK, "empty-dir")
    os.makedirs(empty)
    refused(empty, "error K3", "no tokenizer.json")
    # An id outside the vocabulary in decode.
    p = run("tokenize", "--tokenizer", HF["gpt2"], "--json", "--decode", "--input",
            write_json("oob.json", [[1, 2, 10**6]]), check=False)
    assert p.returncode == 2 and "error K2" in p.stderr, p.stderr


if __name__ == "__main__":
    main([test_hf_tokenizer_json_encode_and_decode_match_hf,
          test_component_variants_match_hf,
          test_sentencepiece_model_encode_and_decode_match_sentencepiece,
          test_special_ids_come_from_the_files,
          test_unsupported_and_broken_files_are_refused_with_their_rule])
