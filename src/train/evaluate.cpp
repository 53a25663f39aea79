#include "train/evaluate.h"

#include <algorithm>

#include "data/synthetic.h"
#include "rl/rollout.h"

namespace foldmoe {

std::string greedy_generate(Model& model, const data::DataSource& data, const std::string& prompt, int max_new) {
  const data::Tokenizer& tok = data.tokenizer();
  std::vector<int32_t> ids = data::prompt_ids(data, prompt);
  // KV-cache decoding (src/rl): prefill once, then one token per step.
  rl::SamplingParams sp;
  sp.greedy = true;
  rl::RolloutOptions opt;
  opt.max_new_tokens = max_new;
  opt.eos_id = tok.eos_id().value_or(-1);
  opt.record_routing = false;
  const std::vector<rl::Response> r = rl::generate(model, {ids}, sp, opt);
  return data::continuation_text(tok, r[0].tokens, '?');
}

EvalResult evaluate(Model& model, const data::DataSource& data, int samples_per_task, int seq_len) {
  EvalResult r;
  if (const data::SyntheticCorpus* corpus = data.synthetic())
    for (data::Task task : corpus->tasks()) {
      const std::string name = data::task_name(task);
      const std::vector<data::TaskExample> examples = corpus->eval_set(name, samples_per_task);
      std::vector<std::string> answers;
      for (const data::TaskExample& ex : examples)
        answers.push_back(greedy_generate(model, data, ex.prompt, int(ex.answer.size()) + 2));
      r.accuracy[name] = data::exact_match_rate(examples, answers);
    }
  // Held-out loss: the first validation batch of 16 sequences (never a training step's batch).
  const data::Batch batch = data.validation_batch(0, 16, seq_len);
  const MicroBatch mb = make_micro_batch(batch.tokens.data<int32_t>(), batch.loss_mask.data<uint8_t>(),
                                         batch.task_ids.data<uint8_t>(), seq_len, 0, 16);
  std::vector<float> logits;
  MicroBatchResult res;
  model.forward_logits(mb, logits, &res);
  r.loss = res.ce_sum / double(std::max<int64_t>(res.n_valid, 1));
  return r;
}

}  // namespace foldmoe
