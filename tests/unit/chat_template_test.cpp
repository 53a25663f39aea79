// The chat-template renderer (data/chat_template/): loading refuses what is outside the subset with
// K9 and the line and column; rendering failures are K9 UserErrors, never crashes; the named
// templates and the `model` lookup (K10). Byte equality with jinja2 itself is checked by
// tests/e2e/test_chat_templates.py (jinja2 is the reference there); here: a fuzz of mutated real
// templates, each of which must render or fail with a UserError (also under ASan).
#include "data/chat_template/chat_template.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/check.h"

namespace foldmoe::data {
namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

const fs::path kFixtures = fs::path(FOLDMOE_SOURCE_DIR) / "tests" / "e2e" / "chat_templates";

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ordered_json chat(std::initializer_list<std::pair<const char*, const char*>> turns) {
  ordered_json m = ordered_json::array();
  for (const auto& [role, content] : turns) m.push_back({{"role", role}, {"content", content}});
  return m;
}

ChatRenderOptions options() {
  ChatRenderOptions o;
  o.bos_token = "<s>";
  o.eos_token = "</s>";
  return o;
}

std::string render(const std::string& source, const ordered_json& messages = chat({{"user", "hi"}})) {
  return ChatTemplate::from_source(source, "test").render(messages, options());
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(ChatTemplate, NamedTemplatesRenderTheirLayouts) {
  const ordered_json m = chat({{"system", "Be brief."}, {"user", " 2+3? "}});
  EXPECT_EQ(ChatTemplate::named("chatml", "char").render(m, options()),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n 2+3? <|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(
      ChatTemplate::named("llama3", "char").render(m, options()),
      "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>"
      "\n\n2+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(ChatTemplate::named("plain", "char").render_user_prompt(" as is ", options()), " as is ");
  EXPECT_TRUE(ChatTemplate::named("plain", "char").is_plain());
  EXPECT_EQ(ChatTemplate::named("chatml", "char").end_of_turn(), "<|im_end|>");
}

TEST(ChatTemplate, WhitespaceControlAndScoping) {
  // trim_blocks drops the newline after a tag; lstrip_blocks the indentation before one.
  EXPECT_EQ(render("  {% if true %}\n  x\n  {% endif %}\n"), "  x\n");
  EXPECT_EQ(render("a {%- if true -%} b {%- endif -%} c"), "abc");
  // A set inside a loop does not leak out; a namespace carries state out.
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for x in range(4) %}{% set ns.n = ns.n + x %}{% set y = x %}"
                   "{% endfor %}{{ ns.n }}{{ y is defined }}"),
            "6False");
}

TEST(ChatTemplate, UnsupportedConstructsAreRefusedAtLoadWithPosition) {
  const std::string e1 = error_of([] { (void)ChatTemplate::from_source("ok\n  {% include 'x' %}", "t.jinja"); });
  EXPECT_NE(e1.find("K9"), std::string::npos) << e1;
  EXPECT_NE(e1.find("t.jinja:2:3"), std::string::npos) << e1;
  EXPECT_NE(e1.find("include"), std::string::npos) << e1;
  EXPECT_NE(e1.find("named template"), std::string::npos) << e1;
  const std::string e2 = error_of([] { (void)ChatTemplate::from_source("{{ x | wordwrap }}", "t"); });
  EXPECT_NE(e2.find("wordwrap"), std::string::npos) << e2;
  const std::string e3 = error_of([] { (void)ChatTemplate::from_source("{% if x %}never closed", "t"); });
  EXPECT_NE(e3.find("never closed"), std::string::npos) << e3;
  EXPECT_NE(error_of([] { (void)ChatTemplate::from_source("{{ 'open", "t"); }).find("K9"), std::string::npos);
  EXPECT_NE(error_of([] { (void)ChatTemplate::from_source("{% break %}", "t"); }).find("outside a for loop"),
            std::string::npos);
}

TEST(ChatTemplate, RenderFailuresAreUserErrors) {
  const std::string raised = error_of([] { (void)render("{{ raise_exception('roles must alternate') }}"); });
  EXPECT_NE(raised.find("roles must alternate"), std::string::npos) << raised;
  EXPECT_NE(error_of([] { (void)render("{{ nothing.attr }}"); }).find("'nothing' is undefined"), std::string::npos);
  EXPECT_NE(error_of([] { (void)render("{{ 1 + 'a' }}"); }).find("test:1:6: unsupported operand"), std::string::npos);
  EXPECT_NE(error_of([] { (void)render("{{ 1 // 0 }}"); }).find("zero"), std::string::npos);
  EXPECT_NE(error_of([] { (void)render("{% for x in range(1000000) %}{% endfor %}"); }).find("range"),
            std::string::npos);
  EXPECT_NE(error_of([] { (void)render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"); }).find("64"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              (void)render("{{ " + std::string(500, '(') + "1" + std::string(500, ')') + " }}");
            }).find("deeply"),
            std::string::npos);
}

TEST(ChatTemplate, ModelTemplateComesFromTheTokenizerDirectory) {
  const fs::path dir = fs::temp_directory_path() / ("foldmoe-chat-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << "{}";
  std::ofstream(dir / "tokenizer_config.json") << R"({"chat_template": [{"name": "tool_use", "template": "T"},
                                                     {"name": "default", "template": "D{{ messages|length }}"}]})";
  EXPECT_EQ(ChatTemplate::named("model", (dir / "tokenizer.json").string()).render(chat({{"user", "x"}}), options()),
            "D1");
  std::ofstream(dir / "tokenizer_config.json") << R"({"eos_token": "</s>"})";
  const std::string e = error_of([&] { (void)ChatTemplate::named("model", dir.string()); });
  EXPECT_NE(e.find("K10"), std::string::npos) << e;
  EXPECT_NE(e.find("tokenizer_config.json"), std::string::npos) << e;
  std::ofstream(dir / "chat_template.jinja") << "J{{ messages[0].content }}";
  EXPECT_EQ(ChatTemplate::named("model", dir.string()).render(chat({{"user", "x"}}), options()), "Jx");
  EXPECT_NE(error_of([] { (void)ChatTemplate::named("model", "char"); }).find("K10"), std::string::npos);
  EXPECT_NE(error_of([] { (void)ChatTemplate::named("vicuna", "char"); }).find("K10"), std::string::npos);
  fs::remove_all(dir);
}

// Mutations of the real templates: deleted, duplicated and swapped spans, and inserted fragments of
// template syntax. Every mutant must load and render, or fail with a UserError.
TEST(ChatTemplate, FuzzedTemplatesRenderOrFailCleanly) {
  std::vector<std::string> seeds;
  for (const auto& e : fs::directory_iterator(kFixtures))
    if (e.path().extension() == ".jinja") seeds.push_back(read(e.path()));
  ASSERT_GE(seeds.size(), 10u);
  static const char* const kFragments[] = {"{%",
                                           "%}",
                                           "{{",
                                           "}}",
                                           "{#",
                                           "#}",
                                           "-",
                                           "+",
                                           "|",
                                           "(",
                                           ")",
                                           "[",
                                           "]",
                                           "[::-1]",
                                           "'",
                                           "\"",
                                           "\\",
                                           ",",
                                           ".",
                                           "endfor",
                                           "endif",
                                           "else",
                                           "elif",
                                           " if ",
                                           " in ",
                                           " not ",
                                           " is ",
                                           "loop.",
                                           "ns.",
                                           "namespace(",
                                           "{% endfor %}",
                                           "{% for x in messages %}",
                                           "{% set a = 1 %}",
                                           "| tojson",
                                           "| trim",
                                           "raise_exception(",
                                           "1/0",
                                           "**",
                                           "~",
                                           "{% macro m(a) %}",
                                           "{% endmacro %}",
                                           "m(",
                                           "é",
                                           "\n",
                                           "{%- ",
                                           " -%}",
                                           "range(99999)",
                                           "* 1000000"};
  const std::vector<ordered_json> messages = {
      chat({{"user", "hi"}}), chat({{"system", "s"}, {"user", "q"}, {"assistant", "<think>t</think>a"}}),
      chat({{"assistant", "first"}, {"user", "ü"}})};
  std::mt19937_64 rng(20261206);
  int loaded = 0, rendered = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string s = seeds[rng() % seeds.size()];
    const int edits = 1 + int(rng() % 4);
    for (int k = 0; k < edits && !s.empty(); ++k) {
      const size_t at = rng() % s.size(), len = 1 + rng() % 12;
      switch (rng() % 4) {
        case 0:
          s.erase(at, len);
          break;
        case 1:
          s.insert(at, s.substr(at, len));
          break;
        case 2:
          s.insert(at, kFragments[rng() % std::size(kFragments)]);
          break;
        default:
          s[at] = static_cast<char>(rng() % 256);
          break;
      }
    }
    try {
      const ChatTemplate t = ChatTemplate::from_source(s, "fuzz");
      ++loaded;
      for (const ordered_json& m : messages) {
        try {
          (void)t.render(m, options());
          ++rendered;
        } catch (const UserError&) {
        }
      }
    } catch (const UserError&) {
    }
  }
  // The mutations must exercise both paths: many mutants still load, some still render.
  EXPECT_GT(loaded, 300);
  EXPECT_GT(rendered, 300);
}

}  // namespace
}  // namespace foldmoe::data
