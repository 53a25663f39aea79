#include "config/data_rules.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>

namespace foldmoe {

std::optional<std::array<double, 3>> parse_data_split(const std::string& split) {
  std::array<double, 3> parts{0, 0, 0};
  size_t n = 0, pos = 0;
  while (true) {
    const size_t end = split.find_first_of(",/", pos);
    std::string piece = split.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    while (!piece.empty() && piece.front() == ' ') piece.erase(piece.begin());
    while (!piece.empty() && piece.back() == ' ') piece.pop_back();
    if (n == 3 || piece.empty()) return std::nullopt;
    char* stop = nullptr;
    const double v = std::strtod(piece.c_str(), &stop);
    if (stop != piece.c_str() + piece.size() || !std::isfinite(v) || v < 0) return std::nullopt;
    parts[n++] = v;
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  if (parts[0] + parts[1] + parts[2] <= 0) return std::nullopt;
  return parts;
}

void data_rules(const Config& c, Problems& p) {
  const DataConfig& d = c.data;
  const bool indexed = d.source == "indexed";
  if (indexed && d.paths.empty())
    p.add("D8", "[data] source = \"indexed\" but [data] paths is empty.",
          "list the dataset prefixes, e.g. paths = [\"data/corpus_text_document\"] (PREFIX.bin and PREFIX.idx, as "
          "written by `foldmoe preprocess`).");
  if (!indexed && d.source == "synthetic" && !d.paths.empty())
    p.add("D20",
          fmt::format("[data] paths lists {} dataset(s) but source = \"synthetic\" reads no files.", d.paths.size()),
          "set [data] source = \"indexed\" to train on them, or remove paths.");
  if (!d.weights.empty()) {
    if (d.weights.size() != d.paths.size())
      p.add("D9", fmt::format("[data] weights has {} entries for {} paths.", d.weights.size(), d.paths.size()),
            "give one weight per path, in the same order, or leave weights empty (= blend by size).");
    for (double w : d.weights)
      if (std::isfinite(w) && !(w > 0)) {
        p.add("D9", fmt::format("[data] weights entry {} is not > 0.", w),
              "use positive weights (they are normalised to sum to 1), or drop the dataset from paths.");
        break;
      }
  }
  const std::optional<std::array<double, 3>> split = parse_data_split(d.split);
  if (!split)
    p.add("D7", fmt::format("[data] split = \"{}\" is not a train,valid,test split.", clip_value_text(d.split)),
          "write 1-3 non-negative proportions separated by ',' or '/', e.g. split = \"969,30,1\".");
  if (d.eod_mask_loss && !indexed)
    p.add("D20", "[data] eod_mask_loss = true applies to indexed data only (the synthetic corpus masks its padding).",
          "set eod_mask_loss = false, or source = \"indexed\".");
  // A tokenizer other than "char" with the synthetic source is refused where the source is made
  // (data::make_data_source), not here: a checkpoint of a model with its own tokenizer (an HF
  // directory, an RL run started from one) keeps that tokenizer in [data] while reading no corpus.
  if (d.tokenizer.empty())
    p.add("D23", "[data] tokenizer is empty.",
          "set it to \"char\", a tokenizer.json (or its directory) or a SentencePiece .model file.");

  const EvalConfig& e = c.eval;
  if (e.interval < 0)
    p.add("V1", fmt::format("[eval] interval = {} must be >= 0.", e.interval),
          "set interval = 0 to turn validation off.");
  if (e.iters < 1) p.add("V1", fmt::format("[eval] iters = {} must be >= 1.", e.iters), "set iters = 1 or more.");
  if (indexed && e.interval > 0 && split && (*split)[1] <= 0)
    p.add("E1",
          fmt::format("[eval] interval = {} validates on the valid split, but [data] split = \"{}\" gives it no "
                      "documents.",
                      e.interval, d.split),
          "give the valid part a share, e.g. split = \"969,30,1\", or set [eval] interval = 0.");
}

}  // namespace foldmoe
