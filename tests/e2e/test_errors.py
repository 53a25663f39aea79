"""Bad input gets a clear error (exit 2) naming the value, the rule and the fix; nothing is lost."""
import hashlib
import os

from e2e_common import main, run, tmpdir


def expect_error(args, *needles):
    p = run(*args, check=False)
    assert p.returncode == 2, f"exit {p.returncode} for {args}\n{p.stdout}\n{p.stderr}"
    msg = p.stderr
    assert "Traceback" not in msg and "internal error" not in msg, msg
    for n in needles:
        assert n in msg, f"{n!r} not in error message:\n{msg}"
    return msg


def digest(path):
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(path)):
        for f in sorted(files):
            with open(os.path.join(root, f), "rb") as fh:
                h.update(f.encode() + fh.read())
    return h.hexdigest()


def small_checkpoint():
    d = tmpdir()
    run("train", f"--train.run_dir={d}", "--train.steps=3", "--train.micro_batch=2")
    return d, os.path.join(d, "checkpoints", "step-00000003")


def test_unknown_key_suggests_the_right_one():
    expect_error(["train", "--moe.topkk=2"], "topkk", "topk")


def test_impossible_values_name_key_and_rule():
    expect_error(["train", "--moe.topk=9"], "topk", "fix")
    expect_error(["train", "--model.heads=5"], "heads")
    expect_error(["train", "--moe.pad_to_capacity=true"], "pad_to_capacity", "capacity_factor")
    expect_error(["train", "--moe.score_function=sigmoidal"], "score_function")
    expect_error(["train", "--train.micro_batch=0"], "micro_batch")
    expect_error(["train", "--optim.schedule=linearr"], "schedule")
    expect_error(["train", "--moe.topk=two"], "topk")
    expect_error(["train", "--data.tasks=add,mul"], "mul")


def test_values_that_cannot_train_are_refused_with_their_rule():
    expect_error(["train", "--moe.capacity_factor=0"], "config error M13", "capacity_factor = 0", "fix:")
    expect_error(["train", "--optim.lr=inf"], "config error V2", "[optim] lr = inf", "fix:")
    expect_error(["train", "--optim.lr=nan"], "config error V2", "[optim] lr = nan")
    expect_error(["train", "--optim.lr=-0.1"], "config error V1", "[optim] lr = -0.1 must be > 0")
    expect_error(["train", "--moe.load_balancing_type=sinkhorn"], "config error M8", "\"sinkhorn\" is unknown")


def test_missing_config_file():
    expect_error(["train", "--config", "/nonexistent/cfg.toml"], "/nonexistent/cfg.toml", "does not exist")


def test_config_that_is_a_directory_is_refused():
    d = tmpdir()
    expect_error(["train", "--config", d, f"--train.run_dir={d}/run"], f"'{d}' is a directory", "fix:")
    assert not os.path.exists(os.path.join(d, "run")), "a run started despite the bad --config"
    expect_error(["config", "--config", d], "is a directory")
    expect_error(["topology", "--world", "1", "--config", d], "is a directory")


def test_one_key_config_resolves_to_the_built_in_defaults():
    d = tmpdir()
    p = os.path.join(d, "steps.toml")
    with open(p, "w") as f:
        f.write("[train]\nsteps = 10\n")
    from_file = run("config", "--config", p).stdout
    from_flags = run("config", "--train.steps=10").stdout
    assert from_file == from_flags, "a one-key file and a flag resolve differently"
    assert "\nnum_experts = 8  #" in from_file and "\nhidden = 96  #" in from_file, from_file


def test_bad_toml_reports_the_location():
    d = tmpdir()
    p = os.path.join(d, "bad.toml")
    with open(p, "w") as f:
        f.write("[model]\nlayers = = 2\n")
    expect_error(["train", "--config", p], "bad.toml")


def test_missing_checkpoint():
    expect_error(["eval", "--checkpoint", "/nonexistent/ckpt"], "/nonexistent/ckpt")
    expect_error(["train", "--checkpoint.load=/nonexistent/ckpt"], "/nonexistent/ckpt")


def test_truncated_and_corrupted_checkpoints_are_rejected_and_left_alone():
    _, ck = small_checkpoint()
    model = os.path.join(ck, "model.safetensors")
    with open(model, "rb") as f:
        data = f.read()
    with open(model, "wb") as f:
        f.write(data[: len(data) // 2])
    before = digest(ck)
    expect_error(["eval", "--checkpoint", ck], "model.safetensors")
    assert digest(ck) == before
    with open(model, "wb") as f:
        f.write(data[:-8] + bytes(b ^ 0xFF for b in data[-8:]))
    before = digest(ck)
    expect_error(["train", f"--checkpoint.load={ck}", "--train.steps=5", "--train.micro_batch=2"], "corrupt")
    assert digest(ck) == before


def test_incomplete_checkpoint_is_rejected():
    _, ck = small_checkpoint()
    os.remove(os.path.join(ck, "COMPLETE"))
    expect_error(["eval", "--checkpoint", ck], "incomplete")


def test_checkpoint_of_another_model_names_the_parameter():
    _, ck = small_checkpoint()
    expect_error(["train", f"--checkpoint.load={ck}", "--model.hidden=64", "--train.steps=5",
                  "--train.micro_batch=2"], "embedding.weight")


def test_bad_layouts_name_their_rule():
    expect_error(["train", "--parallel.tp=2"], "L3", "world size 1")
    expect_error(["train", "--parallel.ep=3"], "ep = 3", "num_experts")
    expect_error(["topology", "--world", "8", "--tp", "2", "--pp", "2", "--ep", "4", "--etp", "1", "--order",
                  "tp-cp-ep-pp-dp"], "L5")
    expect_error(["topology", "--world", "12", "--tp", "2", "--cp", "2", "--pp", "2"], "L3")


def test_mpi_layout_error_is_reported_once():
    import subprocess
    from e2e_common import BIN, ENV
    p = subprocess.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "3", BIN, "train",
                        "--parallel.tp=2", "--parallel.etp=1"], capture_output=True, text=True, env=ENV)
    assert p.returncode != 0
    assert p.stderr.count("layout error L3: world size 3") == 1, p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr
    # A pipeline layout error is also reported once, before any rank starts work.
    p = subprocess.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2", BIN, "train",
                        "--parallel.pp=2", "--model.layers=3"], capture_output=True, text=True, env=ENV)
    assert p.returncode != 0 and p.stderr.count("layout error L12: [model] layers = 3") == 1, p.stderr


def test_bad_pipeline_and_context_layouts_each_get_their_own_error():
    expect_error(["train", "--parallel.pp=2", "--model.layers=3"], "L12", "layers = 3 is not divisible by pp = 2",
                 "pipeline_layers")
    expect_error(["train", "--parallel.pp=2", "--parallel.vpp=2", "--model.layers=6"], "L12",
                 "not divisible by pp*vpp")
    expect_error(["train", "--parallel.vpp=2"], "L12", "needs pp >= 2")
    expect_error(["train", "--parallel.pp=2", "--parallel.vpp=2", "--model.layers=4", "--train.micro_batches=3"],
                 "L14", "micro_batches = 3")
    expect_error(["train", "--parallel.pp=2", "--model.layers=2", "--parallel.pipeline_layers=[3,0]"], "L12",
                 "entry < 1", "sums to 3")
    expect_error(["train", "--parallel.pp=2", "--model.layers=4", "--parallel.pipeline_layers=[1,1,2]"], "L12",
                 "3 entries")
    expect_error(["train", "--parallel.cp=2", "--train.seq_len=30"], "L8", "2*cp = 4")
    expect_error(["train", "--train.recompute=some"], "recompute", "none | moe | full")
    expect_error(["topology", "--world", "8", "--pp", "2", "--ep", "8"], "L4", "etp·ep·pp")


def test_vocab_too_small_for_the_data():
    expect_error(["train", "--model.vocab=50"], "vocab")


if __name__ == "__main__":
    main([test_unknown_key_suggests_the_right_one, test_impossible_values_name_key_and_rule, test_missing_config_file,
          test_bad_toml_reports_the_location, test_missing_checkpoint,
          test_values_that_cannot_train_are_refused_with_their_rule, test_config_that_is_a_directory_is_refused,
          test_one_key_config_resolves_to_the_built_in_defaults,
          test_truncated_and_corrupted_checkpoints_are_rejected_and_left_alone, test_incomplete_checkpoint_is_rejected,
          test_checkpoint_of_another_model_names_the_parameter, test_bad_layouts_name_their_rule,
          test_mpi_layout_error_is_reported_once, test_bad_pipeline_and_context_layouts_each_get_their_own_error,
          test_vocab_too_small_for_the_data])
