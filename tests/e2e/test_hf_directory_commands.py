"""An HF model directory (config.json, safetensors, tokenizer.json) used directly by the commands
that take a checkpoint (docs/hf-models.md §1): generate and eval use its weights and tokenizer,
`train --checkpoint.load` fine-tunes it on an indexed corpus made with its tokenizer, and
`rl --init` post-trains it; the results go back to HF with `convert --to hf` and load in
transformers with the trained weights."""
import json
import os
import shutil

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

from e2e_common import main, run, tmpdir
from megatron_files import write_megatron
from hf_fixtures import load_tensors, make_model
from test_hf_convert import assert_checkpoint_holds
from tokenizer_fixtures import _bytelevel, training_text


def hf_dir_with_tokenizer(model_type="qwen3_moe"):
    work = tmpdir()
    tok_path = _bytelevel(work, "qwen", None, vocab=400)
    vocab = Tokenizer.from_file(tok_path).get_vocab_size()
    d = make_model(model_type, f"{work}/model", vocab_size=vocab)
    shutil.copy(tok_path, f"{d}/tokenizer.json")
    return d, Tokenizer.from_file(tok_path), work


def test_generate_uses_the_directory_weights_and_tokenizer():
    d, tok, _ = hf_dir_with_tokenizer()
    out = run("generate", "--checkpoint", d, "--prompt", "In the beginning", "--max-new", "6", "--temperature", "0",
              "--json").stdout
    line = [json.loads(x) for x in out.splitlines() if x.startswith("{")][0]
    ids = line["tokens"]
    assert len(ids) == 6 and all(0 <= i < tok.get_vocab_size() for i in ids), line
    # The continuation is decoded by the directory's tokenizer (the log-prob parity with
    # transformers is tests/e2e's logprobs suite).
    assert line["text"].rstrip("\n") == tok.decode(ids, skip_special_tokens=False), (line["text"], tok.decode(ids))


def test_fine_tune_and_rl_from_the_directory_then_export():
    d, tok, work = hf_dir_with_tokenizer()
    with open(training_text(work)) as f:
        lines = [x for x in f.read().splitlines() if x.strip()][:300]
    prefix = f"{work}/corpus"
    write_megatron(prefix, [tok.encode(x).ids + [0] for x in lines])
    run_dir = f"{work}/ft"
    out = run("train", f"--checkpoint.load={d}", "--data.source=indexed", f"--data.paths={prefix}",
              "--train.steps=3", "--train.seq_len=32", "--train.micro_batch=4", f"--train.run_dir={run_dir}",
              "--log.progress=off").stdout
    assert "tokenizer" in out and d in out, out  # the run names the directory's tokenizer
    ckpt = f"{run_dir}/checkpoints/step-00000003"
    export = f"{work}/export"
    run("convert", "--to", "hf", "--input", ckpt, "--output", export, "--dtype", "fp32")
    assert os.path.exists(f"{export}/tokenizer.json")
    loaded = AutoModelForCausalLM.from_pretrained(export, torch_dtype=torch.float32).state_dict()
    trained = load_file(f"{ckpt}/model.safetensors")
    assert_checkpoint_holds(trained, loaded)
    start = load_tensors(d)
    assert not torch.equal(loaded["model.embed_tokens.weight"], start["model.embed_tokens.weight"])
    # The same command run again with more steps continues the run from its own checkpoint (the HF
    # weights start only a fresh run): its losses are those of an uninterrupted run.
    common = [f"--checkpoint.load={d}", "--data.source=indexed", f"--data.paths={prefix}", "--train.seq_len=32",
              "--train.micro_batch=4", "--log.progress=off", "--optim.warmup_steps=2"]
    run("train", *common, "--train.steps=3", f"--train.run_dir={work}/again")
    run("train", *common, "--train.steps=5", f"--train.run_dir={work}/again")
    run("train", *common, "--train.steps=5", f"--train.run_dir={work}/straight")

    def losses(r):
        with open(f"{r}/metrics.jsonl") as f:
            return {m["step"]: m["lm_loss"] for m in map(json.loads, f) if "lm_loss" in m}
    resumed, straight = losses(f"{work}/again"), losses(f"{work}/straight")
    assert resumed[4] == straight[4] and resumed[5] == straight[5], (resumed, straight)
    # RL post-training straight from the HF directory.
    prompts = f"{work}/prompts.jsonl"
    with open(prompts, "w") as f:
        f.write('{"prompt": "the cat 2+3 =", "answer": "5"}\n{"prompt": "a dog 2+2 =", "answer": "4"}\n')
    out = run("rl", "--init", d, f"--rl.data={prompts}", f"--train.run_dir={work}/rl", "--rl.steps=1",
              "--rl.max_prompt_tokens=64",
              "--rl.prompts_per_step=2", "--rl.group_size=2", "--rl.minibatch_prompts=2",
              "--rl.max_response_tokens=4", "--rl.reward.overlong.enabled=false", "--rl.eval.before_train=false",
              "--log.progress=off").stdout
    assert "foldmoe rl: done, steps 1..1" in out, out


if __name__ == "__main__":
    main([test_generate_uses_the_directory_weights_and_tokenizer, test_fine_tune_and_rl_from_the_directory_then_export])
