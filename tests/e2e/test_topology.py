"""`foldmoe topology`: docs/topology.md §6 examples A and D reproduced by --format json; bad layouts exit 2
with their rule id; the table view says where EP is folded."""
import json
import os
import subprocess
import tempfile

from e2e_common import BIN, ENV, main, run


def topo(*args):
    return json.loads(run("topology", "--format", "json", *args).stdout)


def singletons(n):
    return [[r] for r in range(n)]


def test_example_a():
    t = topo("--world", "8", "--tp", "2", "--cp", "2", "--pp", "2", "--ep", "4", "--etp", "1")
    assert (t["world"], t["tp"], t["cp"], t["pp"], t["dp"], t["ep"], t["etp"], t["edp"]) == (8, 2, 2, 2, 1, 4, 1, 1)
    assert t["order"] == "tp-cp-ep-dp-pp"
    a, e = t["attention"], t["expert"]
    assert a["tp"] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert a["cp"] == [[0, 2], [1, 3], [4, 6], [5, 7]]
    assert a["dp"] == singletons(8)
    assert a["pp"] == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert a["dp_cp"] == [[0, 2], [1, 3], [4, 6], [5, 7]]
    assert a["tp_cp"] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert a["tp_pp"] == [[0, 1, 4, 5], [2, 3, 6, 7]]
    assert a["tp_dp_cp"] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert a["embedding"] == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert a["position_embedding"] == [[0], [1], [2], [3]]
    assert e["etp"] == singletons(8)
    assert e["ep"] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert e["edp"] == singletons(8)
    assert e["etp_ep"] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert e["etp_ep_pp"] == [list(range(8))]
    assert e["pp"] == a["pp"]
    want = ["0,0,0,0|0,0,0,0", "1,0,0,0|0,1,0,0", "0,1,0,0|0,2,0,0", "1,1,0,0|0,3,0,0",
            "0,0,0,1|0,0,0,1", "1,0,0,1|0,1,0,1", "0,1,0,1|0,2,0,1", "1,1,0,1|0,3,0,1"]
    got = [f"{r['tp']},{r['cp']},{r['dp']},{r['pp']}|{r['etp']},{r['ep']},{r['edp']},{r['pp']}" for r in t["ranks"]]
    assert got == want, got
    assert [r["rank"] for r in t["ranks"]] == list(range(8))


def test_example_d():
    t = topo("--world", "8", "--tp", "2", "--ep", "8", "--etp", "1")
    a, e = t["attention"], t["expert"]
    assert (t["dp"], t["edp"]) == (4, 1)
    assert a["tp"] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    for g in (a["cp"], a["pp"], e["etp"], e["edp"], a["embedding"], a["position_embedding"]):
        assert g == singletons(8)
    assert a["dp"] == a["dp_cp"] == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert a["tp_cp"] == a["tp_pp"] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert a["tp_dp_cp"] == e["ep"] == e["etp_ep"] == e["etp_ep_pp"] == [list(range(8))]
    for r in t["ranks"]:
        n = r["rank"]
        assert (r["tp"], r["dp"], r["ep"], r["cp"], r["pp"], r["etp"], r["edp"]) == (n % 2, n // 2, n, 0, 0, 0, 0)


def test_table_names_folding():
    out = run("topology", "--world", "8", "--tp", "2", "--ep", "8", "--etp", "1").stdout
    assert "spanning DP replicas" in out, out
    out = run("topology", "--world", "8", "--tp", "2", "--cp", "2", "--pp", "2", "--ep", "4", "--etp", "1").stdout
    assert "onto TP×CP" in out, out


def expect_layout_error(args, *needles):
    p = run("topology", *args, check=False)
    assert p.returncode == 2, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    for n in needles:
        assert n in p.stderr, f"{n!r} not in:\n{p.stderr}"


def test_invalid_layouts_exit_2():
    expect_layout_error(["--world", "12", "--tp", "2", "--cp", "2", "--pp", "2"],
                        "layout error L3: world size 12 is not divisible by tp·cp·pp = 2·2·2 = 8.", "fix:")
    expect_layout_error(["--world", "8", "--tp", "2", "--pp", "2", "--ep", "4", "--etp", "1",
                         "--order", "tp-cp-ep-pp-dp"], "layout error L5", "pp last")
    expect_layout_error(["--world", "8", "--order", "tp-cp-ep-dp"], "layout error L2", "missing token \"pp\"")


def test_cp_seq_len_L8_under_mpirun():
    """seq_len not divisible by 2·cp is rejected by `foldmoe train` on every rank of an mpirun launch."""
    cfg = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parallel", "configs", "parity-moe.toml")
    d = tempfile.mkdtemp(prefix="foldmoe-e2e-l8-")
    p = subprocess.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "btl", "self,vader", "-np", "2",
                        BIN, "train", "--config", cfg, "--parallel.cp=2", "--train.seq_len=30",
                        f"--train.run_dir={d}"], capture_output=True, text=True, env=ENV)
    assert p.returncode == 2, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    out = p.stdout + p.stderr
    assert "layout error L8: [train] seq_len = 30 is not divisible by 2*cp = 4" in out, out
    assert not os.path.exists(os.path.join(d, "metrics.jsonl")), "a step ran despite L8"


def test_config_model_rules():
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write("[model]\nlayers = 2\nheads = 4\nkv_heads = 2\n[moe]\nnum_experts = 8\n[parallel]\nep = 3\n")
    try:
        expect_layout_error(["--world", "3", "--config", f.name], "layout error L6",
                            "[parallel] ep = 3 does not divide [moe] num_experts = 8")
        t = topo("--world", "4", "--config", f.name, "--ep", "4")
        assert t["ep"] == 4 and t["expert"]["ep"] == [[0, 1, 2, 3]]
    finally:
        os.unlink(f.name)


def test_stages_and_memory_for_a_model():
    cfg = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs", "folded-8rank.toml")
    t = topo("--world", "8", "--config", cfg)
    st = t["stages"]
    assert [s["chunk_layers"] for s in st] == [[[0, 1]], [[2, 3]]]
    assert [s["ranks"] for s in st] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert (st[0]["embedding"], st[0]["head"], st[1]["embedding"], st[1]["head"]) == (True, False, False, True)
    # 1F1B with 4 micro-batches: stage 0 holds 2 in flight, the last stage 1.
    assert [s["micro_batches_in_flight"] for s in st] == [2, 1]
    assert all(s["activation_bytes_estimate"] > 0 for s in st)
    # Parameters: the stages of TP1/PP2 hold exactly the one-stage model between them; TP2 halves
    # the sharded ones; the distributed optimizer shards the moments over dp·cp / edp.
    one = topo("--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--etp", "1", "--config", cfg)
    pp2 = topo("--world", "2", "--tp", "1", "--cp", "1", "--pp", "2", "--ep", "1", "--etp", "1", "--config", cfg)
    total = lambda s: s["dense_params_per_rank"] + s["expert_params_per_rank"]
    assert sum(total(s) for s in pp2["stages"]) == total(one["stages"][0])
    assert st[0]["expert_params_per_rank"] * 4 == pp2["stages"][0]["expert_params_per_rank"]  # EP4
    # Interleaved: two chunks per stage, layer runs in virtual-stage order.
    v2 = topo("--world", "2", "--tp", "1", "--cp", "1", "--pp", "2", "--vpp", "2", "--ep", "1", "--etp", "1",
              "--config", cfg)
    assert [s["chunk_layers"] for s in v2["stages"]] == [[[0], [2]], [[1], [3]]]
    table = run("topology", "--world", "8", "--config", cfg).stdout
    assert "pipeline stages" in table and "activations" in table and "embedding" in table


if __name__ == "__main__":
    main([test_stages_and_memory_for_a_model, test_example_a, test_example_d, test_table_names_folding, test_invalid_layouts_exit_2,
          test_cp_seq_len_L8_under_mpirun, test_config_model_rules])
