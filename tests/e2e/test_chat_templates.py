"""Chat templates: foldmoe's jinja2-subset renderer against jinja2 itself, configured exactly as HF
transformers renders chat templates (its own compiled-template function is the reference). Every
fixture template under tests/e2e/chat_templates/ (Qwen2.5, Qwen3, Llama-2, Llama-3, Llama-3.1,
Mistral, OLMoE/Tulu, DeepSeek-style, functionary, ChatML) and the named templates are rendered over
many message lists (system/user/assistant mixes, tool turns, unicode, padded whitespace,
add_generation_prompt on and off, enable_thinking) through `foldmoe tokenize --chat-template
--messages`; the text must be byte-equal to jinja2's, the ids equal to HF tokenizers' encoding of
jinja2's text, and a template that raises in jinja2 must raise (rule K9) in foldmoe too."""
import glob
import json
import os
import random
import warnings

from tokenizers import Tokenizer
from transformers.utils.chat_template_utils import _compile_jinja_template

from e2e_common import ROOT, main, run, tmpdir
from tokenizer_fixtures import QWEN2_REGEX, _bytelevel
from tokenizers import normalizers

FIXTURES = os.path.join(ROOT, "tests", "e2e", "chat_templates")
TEXTS = ["Hi", "What is 2+3?", "  padded with spaces  \n", "naïve café — “quotes” 日本語 😀", "line one\nline two\n\n",
         "It's \"quoted\" and {{ not a tag }} {% neither %}", "<think>\nreasoning here\n</think>\n\nThe answer is 5",
         "tab\tand trailing space ", "Answer: 42"]


def conversations(seed=7, n=60):
    """Message lists: alternating user/assistant turns with an optional system turn first, plus
    irregular ones (two users in a row, a tool turn, an assistant first) that some templates refuse."""
    rng = random.Random(seed)
    out = [[{"role": "user", "content": "Hello"}],
           [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello"}],
           [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
           [{"role": "assistant", "content": "I speak first"}],
           [{"role": "user", "content": "weather?"}, {"role": "tool", "content": "sunny"}],
           [{"role": "system", "content": "s1"}, {"role": "system", "content": "s2"}, {"role": "user", "content": "q"}],
           [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nok"},
            {"role": "user", "content": "again"}, {"role": "assistant", "content": "<think>x</think>final"}]]
    for _ in range(n):
        msgs = []
        if rng.random() < 0.4:
            msgs.append({"role": "system", "content": rng.choice(TEXTS)})
        for t in range(rng.randrange(1, 6)):
            msgs.append({"role": "user" if t % 2 == 0 else "assistant", "content": rng.choice(TEXTS)})
        out.append(msgs)
    return out


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city “now”",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]
TOOL_CHAT = [{"role": "system", "content": "sys"}, {"role": "user", "content": "Weather in Zürich?"},
             {"role": "assistant", "content": "",
              "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}}]},
             {"role": "tool", "content": "{\"temp\": 3.5}"}, {"role": "assistant", "content": "3.5 degrees."}]


def cases():
    out = []
    for k, msgs in enumerate(conversations()):
        case = {"messages": msgs, "add_generation_prompt": k % 3 != 1, "bos_token": "<s>", "eos_token": "</s>"}
        if k % 4 == 0:
            case["enable_thinking"] = k % 8 == 0
        out.append(case)
    # Tool schemas and tool calls (Qwen2.5/Qwen3/Llama-3.1 tool branches, tojson with indent).
    out.append({"messages": TOOL_CHAT, "tools": TOOLS, "add_generation_prompt": True, "bos_token": "<s>",
                "eos_token": "</s>"})
    out.append({"messages": TOOL_CHAT[1:2], "tools": TOOLS, "add_generation_prompt": False, "bos_token": "<s>",
                "eos_token": "</s>"})
    return out


def jinja_render(template, case):
    kwargs = {"messages": case["messages"], "tools": case.get("tools"), "documents": None,
              "add_generation_prompt": case["add_generation_prompt"], "bos_token": case["bos_token"],
              "eos_token": case["eos_token"]}
    if "enable_thinking" in case:
        kwargs["enable_thinking"] = case["enable_thinking"]
    try:
        return _compile_jinja_template(template).render(**kwargs), None
    except Exception as e:  # noqa: BLE001 - a template's own raise_exception or a type error
        return None, e


def compare(template_arg, template_source, tokenizer_json, hf, work, min_rendered=None, few=False):
    cs = cases()[:8] if few else cases()
    path = os.path.join(work, "cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cs, f, ensure_ascii=False)
    out = run("tokenize", "--tokenizer", tokenizer_json, "--chat-template", template_arg, "--messages", path).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == len(cs), (template_arg, len(lines), len(cs))
    rendered = refused = 0
    for case, got in zip(cs, lines):
        want, err = jinja_render(template_source, case)
        if err is not None:
            assert "error" in got and "K9" in got["error"], (template_arg, case, err, got)
            refused += 1
            continue
        assert "error" not in got, (template_arg, case, want, got)
        assert got["text"] == want, (template_arg, case, want, got["text"])
        assert got["ids"] == hf.encode(want, add_special_tokens=False).ids, (template_arg, case)
        rendered += 1
    assert rendered >= (len(cs) // 2 if min_rendered is None else min_rendered), (template_arg, rendered, refused)
    return rendered, refused


def test_fixture_templates_match_jinja2():
    work = tmpdir()
    tok = _bytelevel(work, "qwen2", QWEN2_REGEX, normalizer=normalizers.NFC())
    hf = Tokenizer.from_file(tok)
    files = sorted(glob.glob(os.path.join(FIXTURES, "*.jinja")))
    assert len(files) >= 10, files
    for f in files:
        with open(f, encoding="utf-8") as fh:
            source = fh.read()
        r, x = compare(f, source, tok, hf, work)
        print(f"  {os.path.basename(f)}: {r} rendered equal, {x} refused by both")


def test_named_templates_match_their_jinja_source():
    # `chatml` and `llama3` render what the fixtures of the same layout render.
    work = tmpdir()
    tok = _bytelevel(work, "qwen2", QWEN2_REGEX, normalizer=normalizers.NFC())
    hf = Tokenizer.from_file(tok)
    for name, fixture in (("chatml", "hermes_chatml.jinja"), ("llama3", "llama3_instruct.jinja")):
        with open(os.path.join(FIXTURES, fixture), encoding="utf-8") as fh:
            compare(name, fh.read(), tok, hf, work)


def test_model_template_from_tokenizer_config():
    work = tmpdir()
    tok = _bytelevel(work, "qwen2", QWEN2_REGEX, normalizer=normalizers.NFC())
    hf = Tokenizer.from_file(tok)
    model_dir = os.path.join(work, "model")
    os.makedirs(model_dir)
    os.rename(tok, os.path.join(model_dir, "tokenizer.json"))
    with open(os.path.join(FIXTURES, "qwen3.jinja"), encoding="utf-8") as fh:
        source = fh.read()
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"eos_token": "<|im_end|>", "chat_template": source}, f)
    compare("model", source, model_dir, hf, work)
    # Without a chat_template the error names the file and the fix (rule K10).
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"eos_token": "<|im_end|>"}, f)
    p = run("tokenize", "--tokenizer", model_dir, "--chat-template", "model", "--messages",
            os.path.join(work, "cases.json"), check=False)
    assert p.returncode == 2 and "K10" in p.stderr and "tokenizer_config.json" in p.stderr, p.stderr


# Constructs one by one (whitespace control with trim_blocks/lstrip_blocks, loop variables, scoping,
# slicing, arithmetic, tests, filters, string methods, macros, loop controls, printing of Python
# values, errors), each rendered over a few message lists.
SNIPPETS = [
    "  {% if true %}\n  x\n  {% endif %}\n",
    "a {%- if true -%} b {%- endif -%} c",
    "{% for x in [1,2,3] %}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }},{% endfor %}",
    "{% set ns = namespace(n=0) %}{% for x in range(4) %}{% set ns.n = ns.n + x %}{% set local = x %}{% endfor %}{{ ns.n }}|{{ local is defined }}",
    "{{ 'abc'[::-1] }}{{ [1,2,3][1:] }}{{ 'héllo'[1:3] }}{{ [1,2,3][-1] }}",
    "{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 ~ 'a' ~ none }}",
    "{{ x is defined }} {{ none is none }} {{ 'a' is string }} {{ {} is mapping }} {{ [1] is iterable }} {{ 3 is odd }}",
    "{{ '  pad  ' | trim }}|{{ [1,2] | length }}|{{ {'a': [1, 'é', none, true]} | tojson }}|{{ undefinedvar | default('d') }}",
    "{{ [3,1,2] | first }}{{ 'xyz' | last }}{{ ['a','b'] | join('-') }}{{ 'Ab' | upper }}{{ 'Ab' | lower }}",
    "{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'xxhixx'.strip('x') }} {{ 'hello'.replace('l', 'L') }} {{ 'abc'.startswith('ab') }}",
    "{{ 'b' in 'abc' }} {{ 2 not in [1,2] }} {{ 'k' in {'k': 1} }} {{ 1 if false else 2 }} {{ (1 if false) is defined }}",
    "{{ [{'r': 'a'}, {'r': 'b'}] | selectattr('r', 'equalto', 'b') | list }} {{ {'x': 1, 'y': 2} | items | list }}",
    "{{ true and 'yes' }} {{ 0 or [] or 'last' }} {{ not none }} {{ 1 == 1.0 }} {{ 'a' < 'b' }}",
    "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bo') }} {{ greet('Al', punct='?') }}",
    "{% for x in [1,2,3,4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}",
    "{# comment #}\n{%- set s %}in{{ 1 + 1 }}{% endset %}{{ s }}{{ {'a': 1}.get('b', 'dflt') }}{{ [1, 'two', {'k': none}] }}",
    "{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}{% for x in [] %}x{% else %}empty{% endfor %}",
    "{{ \"it's\" }} {{ ['it\\'s', \"q\\\"\"] }} {{ 'tab\\there' | tojson }} {{ 1.5 }} {{ 10 / 5 }}",
    "line\n    {# c #}\n    {%+ if true %}kept{% endif +%}\n  {{- 'x' -}}  \n\nend\n",
    "a\r\nb {% if true %}\r\nc{% endif %}\r\n",
    "{% for m in messages %}{{ m.role | capitalize }}:{{ m['content'] | length }}{{ ',' if not loop.last }}{% endfor %}",
    "{{ messages | map(attribute='role') | join('/') }} {{ messages | rejectattr('role', 'equalto', 'user') | list | length }}",
    "{{ messages[0].content.split(' ')[0] }} {{ messages[-1]['role'] }} {{ messages[5] is defined }} {{ messages[0].nothing is defined }}",
    "{%- if messages[0]['role'] == 'system' -%}{%- set rest = messages[1:] -%}{%- else -%}{%- set rest = messages -%}{%- endif -%}{{ rest | length }}",
    "{{ (messages | tojson(indent=2)) }}\n{{ {'b': 1, 'a': [1, 2.5, false]} | tojson(indent=4) }}",
    "{{ 'x' * 3 }}{{ [0] * 2 }}{{ 3 * 'ab' }} {{ 'Hello World' | title }} {{ 'hello world'.title() }}",
    "{{ ('a', 'b') }} {{ (1,) }} {{ 'a' if 'a' in ('a', 'b') }} {{ [1, 2] + [3] }} {{ 'a' + 'b' }} {{ -3 | abs }}",
    "{{ 'ÄbC'.lower() }}{{ 'x' ~ 1.0 ~ 2.25 }} {{ 1e3 }} {{ 3 > 2 > 1 }}",
    "{{ raise_exception('refused: ' ~ messages | length) }}",
    "{{ messages[0].content + 1 }}",
    "{{ nothing.attr }}",
    "{{ (1 == 1) != (2 == 3) }} {{ 1 < 2 == 2 }} {{ (messages | length == 1) != (0 % 2 == 0) }} {{ 1 < 3 < 2 }}"
]


def test_constructs_match_jinja2():
    work = tmpdir()
    tok = _bytelevel(work, "qwen2", QWEN2_REGEX, normalizer=normalizers.NFC())
    hf = Tokenizer.from_file(tok)
    for k, source in enumerate(SNIPPETS):
        path = os.path.join(work, f"snippet{k}.jinja")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(source)
        compare(path, source, tok, hf, work, min_rendered=0)


# Random expressions over literals and the messages (operators, filters, tests, methods, slices,
# conditionals), one per template, rendered in a loop over each message list.
ATOMS = ["1", "2", "0", "-3", "2.5", "'ab'", "'Hé'", "''", "' x '", "none", "true", "false", "[1, 2, 3]", "['a', 'b']",
         "{'k': 1, 'j': 'v'}", "messages", "messages[0]", "messages[0].content", "messages[-1]['role']",
         "messages | length", "undefined_name", "(1, 'a')", "range(3) | list", "ns.v"]
BIN = ["+", "-", "*", "//", "%", "~", "==", "!=", "<", ">=", "in", "not in", "and", "or"]
FILTERS = ["trim", "length", "tojson", "string", "upper", "lower", "first", "last", "list", "reverse | list",
           "join(',')", "default('D')", "default('D', true)", "int", "abs", "unique | list", "sort | list",
           "capitalize", "title", "replace('a', 'A')", "items | list"]
TESTS = ["defined", "none", "string", "mapping", "iterable", "number", "integer", "odd", "even", "sequence",
         "boolean", "divisibleby(2)", "in([1, 'ab'])"]
METHODS = [".upper()", ".lower()", ".strip()", ".split()", ".startswith('a')", ".endswith('b')", ".replace('b', 'c')",
           ".get('k')", ".get('zz', 5)", "[1:]", "[::-1]", "[0]", "[-1]", ".title()", ".lstrip('a')", ".find('b')"]


def expr(rng, depth=0):
    r = rng.random()
    if depth > 2 or r < 0.3:
        return rng.choice(ATOMS)
    if r < 0.5:
        return f"({expr(rng, depth + 1)} {rng.choice(BIN)} {expr(rng, depth + 1)})"
    if r < 0.65:
        return f"({expr(rng, depth + 1)} | {rng.choice(FILTERS)})"
    if r < 0.75:
        return f"({expr(rng, depth + 1)} is {'not ' if rng.random() < 0.3 else ''}{rng.choice(TESTS)})"
    if r < 0.85:
        return f"({expr(rng, depth + 1)}){rng.choice(METHODS)}"
    if r < 0.92:
        return f"({expr(rng, depth + 1)} if {expr(rng, depth + 1)} else {expr(rng, depth + 1)})"
    return f"(not {expr(rng, depth + 1)})"


def random_templates(n, seed=11):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        body = "".join(f"[{{{{ {expr(rng)} }}}}]" for _ in range(1))
        out.append("{% set ns = namespace(v='w') %}{% for m in messages %}{{ loop.index }}:" + body + "{% endfor %}")
    return out


def test_random_expressions_match_jinja2():
    work = tmpdir()
    tok = _bytelevel(work, "qwen2", QWEN2_REGEX, normalizer=normalizers.NFC())
    hf = Tokenizer.from_file(tok)
    warnings.filterwarnings("ignore", category=SyntaxWarning)  # jinja2 compiling e.g. `2.5[0]`
    rendered = refused = 0
    for k, source in enumerate(random_templates(300)):
        path = os.path.join(work, f"random{k}.jinja")
        with open(path, "w", encoding="utf-8") as f:
            f.write(source)
        r, x = compare(path, source, tok, hf, work, min_rendered=0, few=True)
        rendered, refused = rendered + r, refused + x
    print(f"  random expressions: {rendered} renders equal, {refused} refused by both")
    assert rendered >= 600, rendered


def test_unsupported_template_is_refused_with_its_position():
    work = tmpdir()
    path = os.path.join(work, "t.jinja")
    with open(path, "w") as f:
        f.write("{% for m in messages %}\n  {% include 'other.jinja' %}\n{% endfor %}")
    cases_path = os.path.join(work, "c.json")
    with open(cases_path, "w") as f:
        json.dump([[{"role": "user", "content": "x"}]], f)
    p = run("tokenize", "--tokenizer", "char", "--chat-template", path, "--messages", cases_path, check=False)
    assert p.returncode == 2 and "K9" in p.stderr and f"{path}:2:" in p.stderr and "include" in p.stderr, p.stderr
    assert "named template" in p.stderr, p.stderr


if __name__ == "__main__":
    main([test_fixture_templates_match_jinja2, test_constructs_match_jinja2, test_random_expressions_match_jinja2,
          test_named_templates_match_their_jinja_source,
          test_model_template_from_tokenizer_config, test_unsupported_template_is_refused_with_its_position])
