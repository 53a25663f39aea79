"""Command-line conventions: every mistake on the command line exits 2 with a message naming the
value, the rule and the fix (never CLI11's own texts and exit codes); --help and --version; a run
directory accepted wherever a checkpoint is; `cmake --install` gives a working binary."""
import os
import re
import shutil
import subprocess

from e2e_common import BIN, ROOT, main, metrics, run, tmpdir

COMMANDS = ["train", "eval", "bench", "dump-reference", "config", "generate", "topology", "plan", "rl", "preprocess",
            "inspect-data", "tokenize"]
CLI11_TEXTS = ["A subcommand is required", "not in range", "1797693", "Could not convert", "were not expected",
               "was not expected", "is required\n"]


def expect_error(args, *needles):
    p = run(*args, check=False)
    assert p.returncode == 2, f"exit {p.returncode} for {args}\n{p.stdout}\n{p.stderr}"
    msg = p.stderr
    assert msg.startswith("foldmoe: error: "), msg
    for t in CLI11_TEXTS + ["Traceback", "internal error", "delete"]:
        assert t not in msg, f"{t!r} in error message for {args}:\n{msg}"
    for n in needles:
        assert n in msg, f"{n!r} not in error message for {args}:\n{msg}"
    return msg


def test_no_command():
    msg = expect_error([], "no command given", "e.g. `foldmoe train`", "--help")
    for c in COMMANDS:
        assert c in msg, (c, msg)


def test_misspelt_command_suggests_the_right_one():
    expect_error(["trian"], "'trian' is not a foldmoe command", "did you mean `train`?")
    expect_error(["evl", "--checkpoint", "x"], "did you mean `eval`?")
    expect_error(["topolgy", "--world", "4"], "did you mean `topology`?")
    msg = expect_error(["frobnicate"], "'frobnicate' is not a foldmoe command", "the commands are")
    assert "did you mean" not in msg, msg
    expect_error(["help"], "did you mean `foldmoe --help`?")
    expect_error(["version"], "did you mean `foldmoe --version`?")
    expect_error(["--steps=3"], "'--steps=3' is not an option of foldmoe itself", "no command given")


def test_help_lists_every_command_on_one_line():
    p = run("--help")
    lines = p.stdout.splitlines()
    for c in COMMANDS:
        rows = [l for l in lines if re.match(rf"^\s+{re.escape(c)}\s+\S", l)]
        assert len(rows) == 1, (c, p.stdout)
    assert "--version" in p.stdout


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(foldmoe VERSION (\d+\.\d+\.\d+)", f.read()).group(1)


def test_version_names_backends_and_libraries():
    out = run("--version").stdout
    assert out.startswith(f"foldmoe {project_version()} "), out
    openblas = subprocess.run(["pkg-config", "--modversion", "openblas"], capture_output=True, text=True).stdout.strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", openblas), openblas
    assert f"OpenBLAS {openblas}" in out and re.search(rf"OpenBLAS\s+{re.escape(openblas)}\n", out), out
    mpi = subprocess.run(["mpirun", "--version"], capture_output=True, text=True).stdout  # "mpirun (Open MPI) 4.1.4"
    impl, ver = re.search(r"\((.+?)\) (\d+\.\d+\.\d+)", mpi).groups()
    assert re.search(rf"communication\s+MPI \d\.\d: {re.escape(impl)} v?{re.escape(ver)}", out), (mpi, out)
    for lib in ["toml++", "CLI11", "fmt", "nlohmann-json"]:
        assert re.search(rf"\n  {re.escape(lib)}\s+\d+\.\d+\.\d+\n", out), (lib, out)


def test_generate_option_values():
    base = ["generate", "--checkpoint", "/nonexistent", "--prompt", "add:1+2="]
    expect_error(base + ["--max-new", "0"], "--max-new must be an integer ≥ 1 (got '0')", "e.g. --max-new 64")
    expect_error(base + ["--max-new", "-3"], "--max-new must be an integer ≥ 1 (got '-3')")
    expect_error(base + ["--max-new", "ten"], "--max-new must be an integer ≥ 1 (got 'ten')")
    expect_error(base + ["--max-new", "1e9999"], "--max-new", "'1e9999'")
    expect_error(base + ["--max-new", "4294967296"], "--max-new must be an integer ≥ 1 and at most 2147483647")
    expect_error(base + ["--temperature", "-0.5"], "--temperature must be a number ≥ 0 (got '-0.5')")
    expect_error(base + ["--temperature", "nan"], "--temperature must be a number ≥ 0 (got 'nan')")
    expect_error(base + ["--top-p", "0"], "--top-p must be a number in (0, 1] (got '0')", "e.g. --top-p 0.9")
    expect_error(base + ["--top-p", "1.5"], "--top-p must be a number in (0, 1] (got '1.5')")
    expect_error(base + ["--top-k", "-1"], "--top-k must be an integer ≥ 0 (got '-1')")
    expect_error(base + ["--samples", "0"], "--samples must be an integer ≥ 1 (got '0')")
    expect_error(base + ["--seed", "x7"], "--seed must be an integer (got 'x7')")
    expect_error(base + ["--max-neww", "3"], "`foldmoe generate` has no option '--max-neww'", "did you mean --max-new?")
    expect_error(base + ["--max-new"], "--max-new needs a value")
    expect_error(["generate", "--checkpoint", "/nonexistent"], "`foldmoe generate` needs --prompt",
                 "fix: add --prompt VALUE")
    expect_error(["generate", "--prompt", "a"], "`foldmoe generate` needs --checkpoint")
    expect_error(base, "--checkpoint '/nonexistent' does not exist", "run directory")


def test_other_commands_option_values():
    expect_error(["bench", "--steps", "0"], "--steps must be an integer ≥ 1 (got '0')")
    expect_error(["bench", "--warmup", "-1"], "--warmup must be an integer ≥ 0 (got '-1')")
    expect_error(["eval", "--checkpoint", "/x", "--samples", "0"], "--samples must be an integer ≥ 1 (got '0')")
    expect_error(["eval"], "`foldmoe eval` needs --checkpoint")
    expect_error(["eval", "--checkpoint"], "--checkpoint needs a value")
    expect_error(["rl"], "`foldmoe rl` needs --init")
    expect_error(["rl", "--init", "/nonexistent/run"], "--init '/nonexistent/run' does not exist")
    expect_error(["dump-reference"], "`foldmoe dump-reference` needs --out")
    expect_error(["dump-reference", "--out", "/nonexistent/dir/ref.safetensors"], "--out", "'/nonexistent/dir'",
                 "does not exist")
    expect_error(["topology"], "`foldmoe topology` needs --world")
    expect_error(["tokenize", "--text", "hi"], "`foldmoe tokenize` needs --tokenizer")
    expect_error(["tokenize", "--tokenizer", "char"], "needs exactly one of --text and --input")
    expect_error(["tokenize", "--tokenizer", "nosuch.json", "--text", "hi"], "error K3", "'nosuch.json'")
    expect_error(["topology", "--world", "four"], "--world must be an integer (got 'four')")
    expect_error(["topology", "--world", "4", "--tp", "2.5"], "--tp must be an integer (got '2.5')")
    expect_error(["topology", "--world", "4", "--format", "jsn"], "--format must be one of table | json (got 'jsn')",
                 "did you mean --format json?")
    expect_error(["topology", "--world", "4", "--wrld", "4"], "has no option '--wrld'", "did you mean --world?")
    expect_error(["train", "--train.steps", "2"], "'--train.steps' has no value", "write --train.steps=2")
    expect_error(["train", "--confg", "x.toml"], "`foldmoe train` has no option '--confg'", "did you mean --config?")
    expect_error(["train", "steps=3"], "`foldmoe train` takes no argument 'steps=3'", "--section.key=value")
    expect_error(["config", "--keys=maybe"], "--keys")


def test_checkpoint_arguments_accept_a_run_directory():
    d = tmpdir()
    run("train", f"--train.run_dir={d}", "--train.steps=3", "--train.micro_batch=2", "--checkpoint.interval=2")
    ckpts = os.path.join(d, "checkpoints")
    assert sorted(os.listdir(ckpts)) == ["step-00000002", "step-00000003"], os.listdir(ckpts)
    # An interrupted later save is skipped (and left alone), never taken.
    broken = os.path.join(ckpts, "step-00000009")
    shutil.copytree(os.path.join(ckpts, "step-00000003"), broken)
    os.remove(os.path.join(broken, "COMPLETE"))
    latest = os.path.join(ckpts, "step-00000003")
    for arg in (d, ckpts):
        out = run("eval", "--checkpoint", arg, "--samples", "4").stdout
        assert f"checkpoint {latest} (step 3)" in out, out
    out = run("generate", "--checkpoint", d, "--prompt", "add:1+2=", "--max-new", "3").stdout
    assert f"checkpoint {latest} (step 3)" in out, out
    expect_error(["generate", "--checkpoint", latest, "--prompt", "add:1+é="], "--prompt: character", "position 6")
    assert sorted(os.listdir(broken)) == sorted(set(os.listdir(latest)) - {"COMPLETE"})
    # checkpoint.load takes a run directory too: the run resumes after step 3.
    d2 = tmpdir()
    run("train", f"--train.run_dir={d2}", f"--checkpoint.load={d}", "--train.steps=5", "--train.micro_batch=2")
    assert [m["step"] for m in metrics(d2)] == [4, 5], metrics(d2)
    # rl --init takes the run directory as well, and says which checkpoint it took.
    d3 = tmpdir()
    p = run("rl", "--config", os.path.join(ROOT, "configs", "rl-hapo.toml"), "--init", d, "--rl.steps=1",
            f"--train.run_dir={d3}")
    assert f"--init {d}: its latest complete checkpoint is {latest}" in p.stderr, p.stderr
    assert os.path.isdir(os.path.join(d3, "checkpoints", "step-00000001")), os.listdir(d3)
    # A checkpoint given by name is used as it is, even when a later one exists.
    out = run("eval", "--checkpoint", os.path.join(ckpts, "step-00000002"), "--samples", "4").stdout
    assert "(step 2)" in out, out


def test_what_is_not_a_checkpoint_is_explained_and_left_alone():
    empty = tmpdir()
    expect_error(["eval", "--checkpoint", empty], f"--checkpoint '{empty}' is a directory but holds no checkpoint",
                 "run directory")
    run_dir = tmpdir()
    os.makedirs(os.path.join(run_dir, "checkpoints"))
    with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
        f.write('{"step": 1}\n')
    expect_error(["generate", "--checkpoint", run_dir, "--prompt", "a"], "is a run directory", "saved none yet")
    only_broken = tmpdir()
    os.makedirs(os.path.join(only_broken, "checkpoints", "step-00000004"))
    expect_error(["eval", "--checkpoint", only_broken], "no complete checkpoint", "step-00000004",
                 "left as it is")
    assert os.listdir(os.path.join(only_broken, "checkpoints")) == ["step-00000004"]
    f = os.path.join(empty, "file")
    open(f, "w").close()
    expect_error(["eval", "--checkpoint", f], "is a file, not a directory")
    expect_error(["train", f"--checkpoint.load={empty}"], "checkpoint.load", "holds no checkpoint")
    expect_error(["rl", "--init", empty], f"--init '{empty}' is a directory but holds no checkpoint")
    with open(os.path.join(run_dir, "metrics.jsonl")) as fh:
        assert fh.read() == '{"step": 1}\n'


def test_cmake_install_puts_a_working_binary_on_a_prefix():
    build = os.path.dirname(os.path.abspath(BIN))
    prefix = tmpdir()
    p = subprocess.run(["cmake", "--install", build, "--prefix", prefix], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    installed = os.path.join(prefix, "bin", "foldmoe")
    assert os.access(installed, os.X_OK), os.listdir(prefix)
    out = subprocess.run([installed, "--version"], capture_output=True, text=True, cwd=prefix)
    assert out.returncode == 0 and out.stdout.startswith(f"foldmoe {project_version()} "), out


if __name__ == "__main__":
    main([test_no_command, test_misspelt_command_suggests_the_right_one, test_help_lists_every_command_on_one_line,
          test_version_names_backends_and_libraries, test_generate_option_values, test_other_commands_option_values,
          test_checkpoint_arguments_accept_a_run_directory, test_what_is_not_a_checkpoint_is_explained_and_left_alone,
          test_cmake_install_puts_a_working_binary_on_a_prefix])
