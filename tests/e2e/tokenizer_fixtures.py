"""Small real tokenizers trained on the spot, for tests/e2e/test_tokenizers.py and
bench/tokenizer_compare.py: HF `tokenizers` byte-level BPEs with the GPT-2, Llama-3 and Qwen2 split
regexes, SentencePiece-style BPEs with byte fallback (Metaspace, and the Llama-2/Mistral
Prepend+Replace normalizer), and `spm_train` models (bpe, unigram). The training text is the KJV
bible (Debian bible-kjv) plus UNICODE_LINES; everything is deterministic and takes seconds."""
import json
import os
import random
import subprocess
import unicodedata

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

GPT2_REGEX = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
QWEN2_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
               r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Added after training, with the flags HF honours: a normalized single word, a stripping tag.
EXTRA_TOKENS = [AddedToken("foo bar", single_word=True, normalized=True),
                AddedToken("<tool>", lstrip=True, rstrip=True, normalized=False)]

UNICODE_LINES = [
    "日本語のテキストと漢字、ひらがな、カタカナ。中文：你好，世界！",
    "Emoji 😀😃🎉👩‍👩‍👧‍👦 🇫🇷 flags and ZWJ sequences 👍🏽",
    "Accents: café, naïve, Ångström, Ærø, façade, jalapeño, crème brûlée",
    "Combining marks: e\u0301 a\u0308 n\u0303 o\u0302\u0323 (decomposed) vs é ä ñ ộ",
    "Arabic: مرحبا بالعالم — Hebrew: שלום עולם — Hindi: नमस्ते दुनिया",
    "Tabs\tand\t\ttabs, spaces    runs,   trailing   ",
    "Digits 1234567890 3.14159 1,000,000 ١٢٣ ٤٥٦ ½ ² Ⅻ",
    "Windows line\r\nendings\r\n and a lone \r carriage",
    "Special tokens inside text: <|im_start|>user\nhello<|im_end|><|endoftext|>",
    "Added words: foo bar, xfoo bar, foo barx, (foo bar) and  <tool>  call <tool>x\n<tool>",
    "Greek ΣΊΣΥΦΟΣ σίσυφος, Cyrillic Привет мир, Korean 안녕하세요",
    "Quotes ‘single’ “double” «guillemets» — dashes – and … ellipsis",
    "Contractions: I'm, you're, we've, they'll, she'd, it's, DON'T, WE'LL",
    "Mixed   \n\n\n   whitespace \u00a0 nbsp \u3000 ideographic \u2003 em",
    "Math ∀x∈ℝ: x²≥0, ∑ᵢ aᵢ, √2 ≈ 1.414, ∞ ≠ ∅",
    "Ｆｕｌｌｗｉｄｔｈ ｃｈａｒｓ ﬁ ligature ㎞",
    "Thai ภาษาไทย, Devanagari क्षत्रिय, Tamil தமிழ்",
]


def bible_lines():
    out = subprocess.run(["bible", "-f", "Genesis 1:1-Revelation 22:21"], capture_output=True, text=True, check=True)
    lines = [line for line in out.stdout.split("\n") if line.strip()]
    assert len(lines) > 30000, f"bible-kjv printed only {len(lines)} lines"
    return lines


def random_strings(n, seed=1234):
    """Random Unicode strings: ASCII, Latin, CJK, emoji, whitespace runs, digits, the specials."""
    rng = random.Random(seed)
    pools = [
        lambda: chr(rng.randint(0x20, 0x7E)),
        lambda: chr(rng.randint(0xA0, 0x24F)),
        lambda: chr(rng.randint(0x4E00, 0x4FFF)),
        lambda: chr(rng.randint(0x1F300, 0x1F64F)),
        lambda: rng.choice([" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000"]),
        lambda: str(rng.randint(0, 10**rng.randint(1, 8))),
        lambda: rng.choice(SPECIALS + ["foo bar", " <tool> "]),
        lambda: chr(rng.choice([0x301, 0x308, 0x200D, 0xFE0F])),
        lambda: chr(rng.randint(0x1, 0x10FFFF)) if rng.random() < 0.5 else "'s",
        lambda: chr(rng.randint(0x1, 0x10FFFF)),
    ]
    out = []
    for _ in range(n):
        s = "".join(rng.choice(pools)() for _ in range(rng.randint(0, 40)))
        # Only characters assigned in Python's Unicode tables (14.0): PCRE2 and ICU here know at least
        # that version, HF's Rust regex a newer one, and a character assigned in between is a letter to
        # one side and unassigned to the other.
        out.append("".join(c for c in s if unicodedata.category(c) not in ("Cn", "Cs")))
    return out


def training_text(work):
    path = os.path.join(work, "train.txt")
    with open(path, "w", encoding="utf-8") as f:
        for line in bible_lines()[::4] + UNICODE_LINES * 20:
            f.write(line + "\n")
    return path


def _bytelevel(work, name, regex, normalizer=None, ignore_merges=False, vocab=3000):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer is not None:
        tok.normalizer = normalizer
    if regex is None:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train([training_text(work)], trainer)
    tok.add_tokens(EXTRA_TOKENS)
    path = os.path.join(work, f"{name}.json")
    tok.save(path)
    return path


def _add_byte_tokens(path):
    """Appends <0x00>..<0xFF> to the vocabulary (SentencePiece-style byte fallback pieces)."""
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    vocab = j["model"]["vocab"]
    nxt = max(vocab.values()) + 1
    for b in range(256):
        if f"<0x{b:02X}>" not in vocab:
            vocab[f"<0x{b:02X}>"] = nxt
            nxt += 1
    with open(path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False)


def _spm_style(work, name, llama2_normalizer, vocab=2000):
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<unk>", "<s>", "</s>"] + SPECIALS,
                                  show_progress=False, limit_alphabet=400)
    tok.train([training_text(work)], trainer)
    path = os.path.join(work, f"{name}.json")
    tok.save(path)
    _add_byte_tokens(path)  # into the model's vocabulary, before the added tokens take the next ids
    tok = Tokenizer.from_file(path)
    if llama2_normalizer:
        # Llama-2 / Mistral tokenizer.json: no pre-tokenizer, the normalizer adds the ▁.
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.pre_tokenizer = None
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    else:
        tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="first"),
                                         decoders.ByteFallback(), decoders.Fuse()])
    tok.add_tokens(EXTRA_TOKENS)
    tok.save(path)
    return path


def _mixed(work, vocab=1500):
    """The less common parts together: NFKC, Lowercase, Strip, regex Replace; Digits, Split with
    every behaviour and invert; a subword prefix and end-of-word suffix; Replace/Strip decoders."""
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(),
                                           normalizers.Strip(left=True, right=True),
                                           normalizers.Replace(Regex(r"\s+"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{L}+|\p{N}+|[^\s\p{L}\p{N}]+"), behavior="removed", invert=True),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Split(Regex(r"[,.;:!?]"), behavior="isolated"),
        pre_tokenizers.Split("-", behavior="contiguous"),
        pre_tokenizers.Split(Regex(r"th"), behavior="merged_with_previous"),
        pre_tokenizers.Split(Regex(r"qu"), behavior="merged_with_next")])
    tok.decoder = decoders.Sequence([decoders.Replace("</w>", " "), decoders.Replace("##", ""), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["[UNK]"] + SPECIALS, show_progress=False,
                                  continuing_subword_prefix="##", end_of_word_suffix="</w>", limit_alphabet=300)
    tok.train([training_text(work)], trainer)
    path = os.path.join(work, "mixed.json")
    tok.save(path)
    return path


def hf_tokenizers(work):
    """name -> tokenizer.json path."""
    return {
        "gpt2": _bytelevel(work, "gpt2", None),
        "llama3": _bytelevel(work, "llama3", LLAMA3_REGEX, ignore_merges=True),
        "qwen2": _bytelevel(work, "qwen2", QWEN2_REGEX, normalizer=normalizers.NFC()),
        "metaspace": _spm_style(work, "metaspace", llama2_normalizer=False),
        "llama2": _spm_style(work, "llama2", llama2_normalizer=True),
        "mixed": _mixed(work),
    }


def spm_models(work):
    """name -> .model path, trained by Debian's spm_train."""
    out = {}
    for kind in ("bpe", "unigram"):
        prefix = os.path.join(work, f"spm_{kind}")
        subprocess.run(["spm_train", f"--input={training_text(work)}", f"--model_prefix={prefix}", "--vocab_size=2000",
                        f"--model_type={kind}", "--byte_fallback=true", "--input_sentence_size=20000",
                        "--shuffle_input_sentence=false", "--character_coverage=0.9995", "--num_threads=2",
                        "--user_defined_symbols=<|im_start|>,<|im_end|>"],
                       check=True, capture_output=True)
        out[kind] = prefix + ".model"
    return out
