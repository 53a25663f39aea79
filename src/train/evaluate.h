// Evaluation of a trained model on its data source: exact-answer accuracy on the synthetic tasks
// (greedy decoding of held-out prompts; synthetic data only) and the LM loss on a held-out batch.
#pragma once

#include <map>
#include <string>

#include "data/data_source.h"
#include "model/model.h"

namespace foldmoe {

struct EvalResult {
  std::map<std::string, double> accuracy;  // task -> exact-match rate (synthetic data only)
  double loss = 0;                         // held-out LM loss (token mean)
};

// Greedy continuation of `prompt` (the data's document-start token is prepended) up to `max_new`
// tokens or the end-of-text token. Special tokens in the continuation show as '?'.
std::string greedy_generate(Model& model, const data::DataSource& data, const std::string& prompt, int max_new);

// `data` must have been opened with its validation split.
EvalResult evaluate(Model& model, const data::DataSource& data, int samples_per_task, int seq_len);

}  // namespace foldmoe
