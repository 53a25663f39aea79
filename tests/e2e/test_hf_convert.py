"""Hugging Face checkpoints in and out (docs/hf-models.md): `foldmoe convert --from hf / --to hf`
for every mapped architecture, against models written by transformers and read back with the
safetensors library and transformers; loading and saving under mpirun layouts; bad input."""
import json
import os
import shutil
import struct
import subprocess

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from e2e_common import BIN, ENV, main, run, tmpdir
from hf_fixtures import ARCHS, assert_same_tensors, bits, load_tensors, make_model

MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "mpi_yield_when_idle", "1"]


def convert_round_trip(src, dtype):
    d = tmpdir()
    run("convert", "--from", "hf", "--input", src, "--output", f"{d}/ckpt")
    run("convert", "--to", "hf", "--input", f"{d}/ckpt", "--output", f"{d}/back", "--dtype", dtype)
    return f"{d}/ckpt", f"{d}/back"


def config_keys_equal(original, exported):
    with open(f"{original}/config.json") as f:
        a = json.load(f)
    with open(f"{exported}/config.json") as f:
        b = json.load(f)
    for key, value in b.items():
        if key in ("torch_dtype", "transformers_version", "dtype"):
            continue
        if key in a:
            assert a[key] == value or (a[key] is None and key == "head_dim"), f"config.json {key}: {a[key]} -> {value}"
    assert b["architectures"] == a["architectures"], (a["architectures"], b["architectures"])


def test_round_trip_fp32_every_architecture():
    for mt in ARCHS:
        src = make_model(mt, f"{tmpdir()}/{mt}")
        _, back = convert_round_trip(src, "fp32")
        assert_same_tensors(src, back)
        config_keys_equal(src, back)
        print(f"  {mt}: {len(load_tensors(back))} tensors bit-exact, config.json round-trips")


def test_round_trip_features():
    # Tied embeddings and the three rope_scaling types survive config.json -> foldmoe -> config.json.
    cases = [("llama", dict(tie_word_embeddings=True)),
             ("llama", dict(rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                          "high_freq_factor": 4.0, "original_max_position_embeddings": 64})),
             ("qwen2", dict(rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
                                          "beta_fast": 32.0, "beta_slow": 1.0, "attention_factor": 1.25})),
             ("qwen3", dict(rope_scaling={"rope_type": "linear", "factor": 2.0}))]
    for mt, extra in cases:
        src = make_model(mt, f"{tmpdir()}/{mt}", **extra)
        _, back = convert_round_trip(src, "fp32")
        assert_same_tensors(src, back)
        config_keys_equal(src, back)
        with open(f"{back}/config.json") as f:
            exported = json.load(f)
        for key, value in extra.items():
            if key == "rope_scaling":
                got = {k: v for k, v in exported[key].items() if k in value}
                assert got == value, (mt, got, value)
            else:
                assert exported[key] == value, (mt, key, exported[key])
        if extra.get("tie_word_embeddings"):
            assert "lm_head.weight" not in load_tensors(back)


def test_round_trip_bf16_and_sharded_input():
    src = make_model("qwen3_moe", f"{tmpdir()}/q3", dtype=torch.bfloat16, max_shard_size="20KB")
    assert os.path.exists(f"{src}/model.safetensors.index.json"), "transformers wrote one file, the test needs shards"
    _, back = convert_round_trip(src, "bf16")
    assert_same_tensors(src, back)


def test_export_shards_and_transformers_loads_it():
    src = make_model("mixtral", f"{tmpdir()}/mx")
    d = tmpdir()
    run("convert", "--from", "hf", "--input", src, "--output", f"{d}/ckpt")
    run("convert", "--to", "hf", "--input", f"{d}/ckpt", "--output", f"{d}/back", "--dtype", "fp32",
        "--max-shard-size", "30KB")
    shards = sorted(f for f in os.listdir(f"{d}/back") if f.endswith(".safetensors"))
    assert len(shards) > 2 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors", shards
    with open(f"{d}/back/model.safetensors.index.json") as f:
        index = json.load(f)
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in load_tensors(f"{d}/back").values())
    loaded = AutoModelForCausalLM.from_pretrained(f"{d}/back", torch_dtype=torch.float32).state_dict()
    ref = load_tensors(src)
    for name, t in ref.items():
        assert torch.equal(bits(loaded[name]), bits(t)), name
    # bf16 export: round to nearest even of the fp32 values, as torch rounds.
    run("convert", "--to", "hf", "--input", f"{d}/ckpt", "--output", f"{d}/bf16", "--dtype", "bf16")
    half = load_tensors(f"{d}/bf16")
    for name, t in ref.items():
        assert torch.equal(bits(half[name]), bits(t.to(torch.bfloat16))), name


def foldmoe_name(hf_name):
    """The foldmoe parameter (and the half of its rows, for fused SwiGLU fc1) of an HF tensor: the
    test's own reading of docs/hf-models.md, independent of src/hf."""
    import re
    fixed = {"model.embed_tokens.weight": "embedding.weight", "model.norm.weight": "final_norm.weight",
             "lm_head.weight": "lm_head.weight"}
    if hf_name in fixed:
        return fixed[hf_name], None
    m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", hf_name)
    i, rest = m.group(1), m.group(2)
    rest = re.sub(r"^(block_sparse_moe|mlp)\.experts\.(\d+)\.", r"moe.experts.\2.", rest)
    rest = re.sub(r"^mlp\.shared_expert\.", "moe.shared.", rest)
    rest = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "mlp_norm.weight",
            "mlp.shared_expert_gate.weight": "moe.shared_gate.weight", "mlp.gate.weight": "moe.router.weight",
            "block_sparse_moe.gate.weight": "moe.router.weight"}.get(rest, rest)
    rest = re.sub(r"^self_attn\.([qkvo])_proj\.weight$", r"attn.w\1", rest)
    rest = re.sub(r"^self_attn\.([qkv])_proj\.bias$", r"attn.\1_bias", rest)
    rest = re.sub(r"^self_attn\.([qk])_norm\.weight$", r"attn.\1_norm", rest)
    for gate, up, down in [("gate_proj", "up_proj", "down_proj"), ("w1", "w3", "w2")]:
        if rest.endswith(f".{gate}.weight"):
            return f"layers.{i}.{rest[:-len(gate) - 8]}.fc1", 0
        if rest.endswith(f".{up}.weight"):
            return f"layers.{i}.{rest[:-len(up) - 8]}.fc1", 1
        if rest.endswith(f".{down}.weight"):
            return f"layers.{i}.{rest[:-len(down) - 8]}.fc2", None
    return f"layers.{i}.{rest}", None


def assert_checkpoint_holds(ckpt, hf):
    """Every HF tensor is where foldmoe keeps it, and the checkpoint holds nothing else."""
    covered = {}
    for name, t in hf.items():
        fm, half = foldmoe_name(name)
        assert fm in ckpt, f"{name} -> {fm} not in the checkpoint"
        value = ckpt[fm] if half is None else ckpt[fm].chunk(2, dim=0)[half]
        assert torch.equal(bits(value), bits(t.float())), f"{name} -> {fm} differs"
        covered[fm] = covered.get(fm, 0) + t.numel()
    for fm, t in ckpt.items():
        assert covered.get(fm) == t.numel(), f"checkpoint tensor {fm} is not (wholly) an HF tensor"


def mpi_convert(np, layout, src, out):
    cmd = MPIRUN + ["-np", str(np), BIN, "convert", "--from", "hf", "--input", src, "--output", out, *layout]
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, f"{' '.join(cmd)}\n{p.stdout}\n{p.stderr}"


def test_layouts_load_the_same_weights():
    # Each rank reads only its shards from the HF files; the foldmoe checkpoint each layout saves
    # (gathered from the shards) must equal the one-process one, tensor for tensor.
    for mt, layouts in [("qwen2_moe", [(2, ["--parallel.tp=2"]), (2, ["--parallel.ep=2"]), (2, ["--parallel.pp=2"]),
                                       (4, ["--parallel.tp=2", "--parallel.ep=2", "--parallel.etp=1"])]),
                        ("olmoe", [(2, ["--parallel.tp=2"]), (2, ["--parallel.ep=2"])]),
                        ("qwen3_moe", [(2, ["--parallel.tp=2"]), (2, ["--parallel.pp=2"])]),
                        ("llama", [(2, ["--parallel.tp=2"]), (2, ["--parallel.pp=2"])])]:
        src = make_model(mt, f"{tmpdir()}/{mt}")
        d = tmpdir()
        run("convert", "--from", "hf", "--input", src, "--output", f"{d}/one")
        one = load_file(f"{d}/one/model.safetensors")
        assert_checkpoint_holds(one, load_tensors(src))
        for np, layout in layouts:
            out = f"{d}/np{np}-{'-'.join(x.split('.')[-1] for x in layout)}"
            mpi_convert(np, layout, src, out)
            got = load_file(f"{out}/model.safetensors")
            assert sorted(got) == sorted(one), (layout, sorted(set(got) ^ set(one)))
            for name in one:
                assert torch.equal(bits(got[name]), bits(one[name])), (mt, layout, name)
            print(f"  {mt} {layout}: same weights as one process")


def test_tied_embeddings_under_pipeline():
    # With tied embeddings both pipeline ends use embedding.weight; HF has no lm_head.weight.
    src = make_model("llama", f"{tmpdir()}/tied", tie_word_embeddings=True)
    d = tmpdir()
    run("convert", "--from", "hf", "--input", src, "--output", f"{d}/one")
    mpi_convert(2, ["--parallel.pp=2"], src, f"{d}/pp")
    one, pp = load_file(f"{d}/one/model.safetensors"), load_file(f"{d}/pp/model.safetensors")
    assert sorted(one) == sorted(pp) and all(torch.equal(bits(one[k]), bits(pp[k])) for k in one)
    assert_checkpoint_holds(one, load_tensors(src))
    cmd = MPIRUN + ["-np", "2", BIN, "convert", "--to", "hf", "--input", f"{d}/one", "--output", f"{d}/hf",
                    "--dtype", "fp32", "--parallel.pp=2"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, p.stderr
    assert_same_tensors(src, f"{d}/hf")


def test_sharded_save_writes_the_same_files():
    # convert --to hf under mpirun with a layout: every rank writes its own slices in place.
    src = make_model("qwen2_moe", f"{tmpdir()}/q2")
    d = tmpdir()
    run("convert", "--from", "hf", "--input", src, "--output", f"{d}/ckpt")
    run("convert", "--to", "hf", "--input", f"{d}/ckpt", "--output", f"{d}/one", "--dtype", "fp32")
    for np, layout in [(2, ["--parallel.tp=2"]), (4, ["--parallel.tp=2", "--parallel.ep=2", "--parallel.etp=1"]),
                       (2, ["--parallel.pp=2"])]:
        out = f"{d}/np{np}-{len(layout)}-{layout[0].split('.')[-1]}"
        cmd = MPIRUN + ["-np", str(np), BIN, "convert", "--to", "hf", "--input", f"{d}/ckpt", "--output", out,
                        "--dtype", "fp32", *layout]
        p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
        assert p.returncode == 0, f"{' '.join(cmd)}\n{p.stdout}\n{p.stderr}"
        for f in os.listdir(f"{d}/one"):
            with open(f"{d}/one/{f}", "rb") as a, open(f"{out}/{f}", "rb") as b:
                assert a.read() == b.read(), (layout, f)
    assert_same_tensors(src, f"{d}/one")


def first_loss(run_dir):
    with open(f"{run_dir}/metrics.jsonl") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if "lm_loss" in r][0]["lm_loss"]


def test_train_from_hf_directory_under_layouts_and_export():
    # --checkpoint.load = an HF directory: the model keys come from config.json and every layout
    # starts from the same weights, so the first step's loss is the one-process loss.
    src = make_model("mixtral", f"{tmpdir()}/mx")
    common = [f"--checkpoint.load={src}", "--train.steps=2", "--train.seq_len=32", "--train.micro_batch=4",
              "--train.global_batch=8", "--moe.z_loss_coeff=0"]
    one = tmpdir()
    run("train", *common, f"--train.run_dir={one}")
    ref = first_loss(one)
    assert abs(ref - torch.log(torch.tensor(160.0)).item()) < 0.3, ref  # a random model of vocabulary 160
    for np, layout in [(2, ["--parallel.tp=2"]), (2, ["--parallel.ep=2"]), (2, ["--parallel.pp=2"]),
                       (4, ["--parallel.tp=2", "--parallel.ep=2", "--parallel.etp=1"])]:
        d = tmpdir()
        # --hf-export: the trainer's own ranks write the HF shards of the trained model in place.
        cmd = MPIRUN + ["-np", str(np), BIN, "train", *common, f"--train.run_dir={d}", *layout,
                        f"--hf-export={d}/hf", "--hf-dtype=fp32"]
        p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
        assert p.returncode == 0, f"{' '.join(cmd)}\n{p.stdout}\n{p.stderr}"
        got = first_loss(d)
        assert abs(got - ref) <= 1e-5 * abs(ref), (layout, got, ref)
        run("convert", "--to", "hf", "--input", f"{d}/checkpoints/step-00000002", "--output", f"{d}/converted",
            "--dtype", "fp32")
        assert_same_tensors(f"{d}/converted", f"{d}/hf")
        print(f"  {layout}: first loss {got:.6f} (one process {ref:.6f}); --hf-export = convert --to hf")
    # Hand the fine-tuned model back: transformers loads the export and holds foldmoe's weights.
    ckpt = f"{one}/checkpoints/step-00000002"
    out = f"{tmpdir()}/export"
    run("convert", "--to", "hf", "--input", ckpt, "--output", out, "--dtype", "fp32")
    trained = load_file(f"{ckpt}/model.safetensors")
    loaded = {k: v for k, v in AutoModelForCausalLM.from_pretrained(out, torch_dtype=torch.float32).state_dict().items()}
    assert_checkpoint_holds(trained, loaded)
    assert not torch.equal(trained["layers.0.attn.wq"], load_tensors(src)["model.layers.0.self_attn.q_proj.weight"])


# ---- bad input: each a clear error naming the file and the tensor or key --------------------------

def expect_error(args, *needles):
    p = run(*args, check=False)
    text = p.stdout + p.stderr
    assert p.returncode != 0, f"foldmoe {' '.join(args)} succeeded"
    assert "Traceback" not in text and "terminate called" not in text, text
    for n in needles:
        assert n in text, f"{n!r} not in:\n{text}"


def from_hf_args(src):
    return ["convert", "--from", "hf", "--input", src, "--output", f"{tmpdir()}/out"]


def edit_config(src, **changes):
    with open(f"{src}/config.json") as f:
        c = json.load(f)
    c.update(changes)
    with open(f"{src}/config.json", "w") as f:
        json.dump(c, f)


def test_bad_hf_directories():
    base = make_model("llama", f"{tmpdir()}/llama")

    def fresh():
        d = f"{tmpdir()}/m"
        shutil.copytree(base, d)
        return d

    d = fresh()
    edit_config(d, model_type="gpt2")
    expect_error(from_hf_args(d), "H2", "model_type 'gpt2'", "config.json")
    d = fresh()
    edit_config(d, hidden_act="gelu")
    expect_error(from_hf_args(d), "H2", "hidden_act", "silu")
    d = fresh()
    edit_config(d, some_new_feature=3)
    expect_error(from_hf_args(d), "H2", "some_new_feature")
    d = fresh()
    edit_config(d, rope_scaling={"rope_type": "dynamic", "factor": 2.0})
    expect_error(from_hf_args(d), "H2", "rope_scaling", "dynamic")
    d = fresh()
    edit_config(d, kv_lora_rank=16)
    expect_error(from_hf_args(d), "H2", "kv_lora_rank", "MLA")
    q = make_model("qwen2", f"{tmpdir()}/qwen2", use_sliding_window=True, sliding_window=64)
    expect_error(from_hf_args(q), "H2", "sliding_window")
    # Shape disagreeing with config.json.
    d = fresh()
    edit_config(d, intermediate_size=40)
    expect_error(from_hf_args(d), "H3", "model.layers.0.mlp.gate_proj.weight", "shape")
    # Missing and extra tensors; an unsupported dtype.
    t = load_file(f"{base}/model.safetensors")
    d = fresh()
    save_file({k: v for k, v in t.items() if k != "model.layers.1.self_attn.k_proj.weight"},
              f"{d}/model.safetensors", metadata={"format": "pt"})
    expect_error(from_hf_args(d), "H3", "lacks tensor 'model.layers.1.self_attn.k_proj.weight'")
    d = fresh()
    save_file(dict(t, **{"model.layers.0.mlp.extra.weight": torch.zeros(2)}), f"{d}/model.safetensors",
              metadata={"format": "pt"})
    expect_error(from_hf_args(d), "H3", "model.layers.0.mlp.extra.weight", "model.safetensors")
    d = fresh()
    save_file(dict(t, **{"model.norm.weight": t["model.norm.weight"].double()}), f"{d}/model.safetensors",
              metadata={"format": "pt"})
    expect_error(from_hf_args(d), "H4", "model.norm.weight", "F64")
    # A truncated shard and an index naming a missing file.
    s = make_model("llama", f"{tmpdir()}/sharded", max_shard_size="20KB")
    shards = sorted(f for f in os.listdir(s) if f.endswith(".safetensors"))
    d = f"{tmpdir()}/trunc"
    shutil.copytree(s, d)
    with open(f"{d}/{shards[-1]}", "r+b") as f:
        f.truncate(os.path.getsize(f"{d}/{shards[-1]}") - 100)
    expect_error(from_hf_args(d), "C4", shards[-1])
    d = f"{tmpdir()}/missing"
    shutil.copytree(s, d)
    os.remove(f"{d}/{shards[0]}")
    expect_error(from_hf_args(d), "H1", shards[0], "does not exist")
    # A damaged header length.
    d = fresh()
    with open(f"{d}/model.safetensors", "r+b") as f:
        f.write(struct.pack("<Q", 10**12))
    expect_error(from_hf_args(d), "C4", "model.safetensors")
    # Outputs are never overwritten; bad options are named.
    out = tmpdir()
    expect_error(["convert", "--from", "hf", "--input", base, "--output", out], "H6", out)
    ck = f"{tmpdir()}/ck"
    run("convert", "--from", "hf", "--input", base, "--output", ck)
    expect_error(["convert", "--to", "hf", "--input", ck, "--output", out], "H6", out)
    expect_error(["convert", "--to", "hf", "--input", ck, "--output", f"{tmpdir()}/x", "--max-shard-size", "5XB"],
                 "--max-shard-size", "5XB")
    expect_error(["convert", "--to", "hf", "--input", ck, "--output", f"{tmpdir()}/x", "--model-type", "mixtral"],
                 "H2", "mixtral")


def test_user_config_disagreeing_with_config_json():
    src = make_model("llama", f"{tmpdir()}/llama")
    expect_error(from_hf_args(src) + ["--model.hidden=64"], "H5", "model.hidden = 64", "32")


if __name__ == "__main__":
    main([test_round_trip_fp32_every_architecture, test_round_trip_features, test_round_trip_bf16_and_sharded_input,
          test_export_shards_and_transformers_loads_it, test_layouts_load_the_same_weights,
          test_tied_embeddings_under_pipeline, test_sharded_save_writes_the_same_files, test_train_from_hf_directory_under_layouts_and_export,
          test_bad_hf_directories,
          test_user_config_disagreeing_with_config_json])
