// `foldmoe dump-reference`: one forward/backward written for the PyTorch reference (docs/model.md).
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "core/check.h"
#include "train/reference_dump.h"
#include "train/trainer.h"

namespace foldmoe::cli {

void register_dump_reference(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("dump-reference", "Write one step's params, batch, loss and gradients");
  auto opts = std::make_shared<ConfigOptions>();
  auto out = std::make_shared<std::string>();
  opts->add_to(sub);
  sub->add_option("--out", *out, "Output .safetensors file")->required();
  set_action(sub, [sub, opts, out] {
    // Checked before the step runs, so that a typo costs nothing.
    const std::filesystem::path parent = std::filesystem::absolute(*out).parent_path();
    if (!std::filesystem::is_directory(parent))
      user_error("--out '{}': directory '{}' does not exist; create it or write the file elsewhere", *out,
                 parent.string());
    dump_reference(resolve_config(opts->load(sub)), *out);
    return 0;
  });
}

}  // namespace foldmoe::cli
