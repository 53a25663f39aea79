// Evaluation on the synthetic tasks: exact-answer accuracy by greedy decoding of held-out prompts,
// and the LM loss on a held-out batch.
#pragma once

#include <map>
#include <string>

#include "data/synthetic.h"
#include "model/model.h"

namespace foldmoe {

struct EvalResult {
  std::map<std::string, double> accuracy;  // task -> exact-match rate
  double loss = 0;                         // held-out LM loss (token mean)
};

// Greedy continuation of `prompt` (no <bos>; it is prepended) up to `max_new` tokens or <eos>.
std::string greedy_generate(Model& model, const std::string& prompt, int max_new);

EvalResult evaluate(Model& model, const data::SyntheticCorpus& corpus, int samples_per_task, int seq_len);

}  // namespace foldmoe
