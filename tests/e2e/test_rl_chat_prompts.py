"""Real prompts in `foldmoe rl`: a policy trained on indexed data made with a HF byte-level BPE
tokenizer (trained here by HF tokenizers) takes JSONL math prompts rendered with the model
directory's own chat template (`rl.chat_template = "model"`) and with the named `chatml`. The
prompt ids the rollout receives (`foldmoe rl --show-prompts`) must equal HF tokenizers' encoding of
jinja2's rendering (the template compiled as transformers compiles it) of the dapo-math user turn;
the stop ids are the tokenizer's eos plus generation_config.json's eos_token_id list (and chatml's
<|im_end|>); an RL step runs on them; a prompt longer than rl.max_prompt_tokens after rendering
(R8) and a template without any end-of-sequence token (R9) are refused naming the line / fix."""
import json
import os

from tokenizers import Tokenizer, normalizers
from transformers.utils.chat_template_utils import _compile_jinja_template

from e2e_common import ROOT, main, run, tmpdir
from megatron_files import write_megatron
from tokenizer_fixtures import QWEN2_REGEX, _bytelevel, bible_lines

FIXTURES = os.path.join(ROOT, "tests", "e2e", "chat_templates")
PROBLEMS = [("What is 2+3?", "5"), ("Compute 7*6.", "42"), ("Half of 18 is?", "9"), ("Solve x+1=4 for x.", "3"),
            ("Is 12 divisible by 4? Give the quotient.", "3"), ("Naïve café: 10-7?", "3")]


def dapo_math(problem):
    # docs/rl.md §6.1, written out independently of foldmoe.
    return ("Solve the following math problem step by step. The last line of your response should be of the form "
            "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n" + problem +
            "\n\nRemember to put your answer on its own line after \"Answer:\".")


def setup():
    d = tmpdir()
    tok_path = _bytelevel(d, "qwen2", QWEN2_REGEX, normalizer=normalizers.NFC(), vocab=1200)
    hf = Tokenizer.from_file(tok_path)
    model_dir = os.path.join(d, "model")
    os.makedirs(model_dir)
    os.rename(tok_path, os.path.join(model_dir, "tokenizer.json"))
    with open(os.path.join(FIXTURES, "qwen2_5.jinja"), encoding="utf-8") as f:
        template = f.read()
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token": None, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                   "chat_template": template}, f)
    eos, im_end = hf.token_to_id("<|endoftext|>"), hf.token_to_id("<|im_end|>")
    with open(os.path.join(model_dir, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": [im_end, eos]}, f)
    lines = [line for line in bible_lines()[:300] if line.strip()]
    prefix = os.path.join(d, "corpus")
    write_megatron(prefix, [hf.encode(line, add_special_tokens=False).ids + [eos] for line in lines])
    run_dir = os.path.join(d, "pre")
    run("train", "--data.source=indexed", f"--data.paths={prefix}", f"--data.tokenizer={model_dir}",
        "--train.steps=2", "--train.seq_len=64", "--train.micro_batch=4", "--model.max_seq_len=512",
        f"--train.run_dir={run_dir}", "--log.progress=off")
    prompts = os.path.join(d, "math.jsonl")
    with open(prompts, "w", encoding="utf-8") as f:
        for p, a in PROBLEMS:
            f.write(json.dumps({"prompt": p, "answer": a}, ensure_ascii=False) + "\n")
    return d, model_dir, hf, template, run_dir, prompts, eos, im_end


def show(run_dir, prompts, *flags, check=True):
    return run("rl", "--init", run_dir, f"--rl.data={prompts}", "--show-prompts", str(len(PROBLEMS)),
               "--rl.max_prompt_tokens=400", "--rl.max_response_tokens=8", *flags, check=check)


def test_rendered_prompt_ids_equal_hf():
    d, model_dir, hf, template, run_dir, prompts, eos, im_end = setup()
    chatml = open(os.path.join(FIXTURES, "hermes_chatml.jinja"), encoding="utf-8").read()
    for name, source, stops in (("model", template, sorted({eos, im_end})), ("chatml", chatml, sorted({eos, im_end}))):
        out = [json.loads(x) for x in show(run_dir, prompts, f"--rl.chat_template={name}").stdout.splitlines()]
        assert out[0]["stop_ids"][0] == eos and sorted(set(out[0]["stop_ids"])) == stops, (name, out[0])
        seen = set()
        for row in out[1:]:
            problem = next(p for p, _ in PROBLEMS if dapo_math(p) == row["prompt"])
            seen.add(problem)
            text = _compile_jinja_template(source).render(
                messages=[{"role": "user", "content": dapo_math(problem)}], tools=None, documents=None,
                add_generation_prompt=True, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
            assert row["ids"] == hf.encode(text, add_special_tokens=False).ids, (name, problem)
        assert seen == {p for p, _ in PROBLEMS}, seen
    # plain keeps the old behaviour: document start (eos for indexed data) + the text's ids.
    out = [json.loads(x) for x in show(run_dir, prompts, "--rl.chat_template=plain").stdout.splitlines()]
    for row in out[1:]:
        assert row["ids"] == [eos] + hf.encode(row["prompt"], add_special_tokens=False).ids
    # One RL step on the chat-rendered prompts.
    rl_dir = os.path.join(d, "rl")
    res = run("rl", "--init", run_dir, f"--rl.data={prompts}", "--rl.chat_template=model",
              f"--train.run_dir={rl_dir}", "--rl.steps=1", "--rl.prompts_per_step=2", "--rl.group_size=2",
              "--rl.minibatch_prompts=2", "--rl.max_prompt_tokens=400", "--rl.max_response_tokens=8",
              "--rl.reward.overlong.enabled=false", "--rl.eval.before_train=false", "--log.progress=off").stdout
    assert "foldmoe rl: done, steps 1..1" in res, res


def test_long_prompt_and_missing_eos_are_refused():
    d, model_dir, hf, template, run_dir, prompts, eos, im_end = setup()
    p = show(run_dir, prompts, "--rl.chat_template=model", "--rl.max_prompt_tokens=20", check=False)
    # (the run's own R7 check needs the trainer; --show-prompts only renders, so R8 is what fires)
    assert p.returncode == 2 and "R8" in p.stderr and f"{prompts}:1" in p.stderr, p.stderr
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token": None, "eos_token": None, "chat_template": template}, f)
    os.remove(os.path.join(model_dir, "generation_config.json"))
    p = show(run_dir, prompts, "--rl.chat_template=model", check=False)
    assert p.returncode == 2 and "R9" in p.stderr and "eos" in p.stderr, p.stderr


if __name__ == "__main__":
    main([test_rendered_prompt_ids_equal_hf, test_long_prompt_and_missing_eos_are_refused])
