#include "train/evaluate.h"

#include <algorithm>

#include "data/tokenizer.h"
#include "rl/rollout.h"

namespace foldmoe {

std::string greedy_generate(Model& model, const std::string& prompt, int max_new) {
  using data::CharTokenizer;
  std::vector<int32_t> ids = {CharTokenizer::kBos};
  for (int32_t t : CharTokenizer::encode(prompt)) ids.push_back(t);
  // KV-cache decoding (src/rl): prefill once, then one token per step.
  rl::SamplingParams sp;
  sp.greedy = true;
  rl::RolloutOptions opt;
  opt.max_new_tokens = max_new;
  opt.eos_id = CharTokenizer::kEos;
  opt.record_routing = false;
  const std::vector<rl::Response> r = rl::generate(model, {ids}, sp, opt);
  std::string text;
  for (int32_t t : r[0].tokens) {
    if (t == CharTokenizer::kEos) break;
    text += (t >= CharTokenizer::kFirstChar && t < CharTokenizer::kVocabSize) ? CharTokenizer::id_to_char(t) : '?';
  }
  return text;
}

EvalResult evaluate(Model& model, const data::SyntheticCorpus& corpus, int samples_per_task, int seq_len) {
  EvalResult r;
  for (data::Task task : corpus.tasks()) {
    const std::string name = data::task_name(task);
    const std::vector<data::TaskExample> examples = corpus.eval_set(name, samples_per_task);
    std::vector<std::string> answers;
    for (const data::TaskExample& ex : examples)
      answers.push_back(greedy_generate(model, ex.prompt, int(ex.answer.size()) + 2));
    r.accuracy[name] = data::exact_match_rate(examples, answers);
  }
  // Held-out loss: a batch from a corpus with an unrelated seed (never a training step's batch).
  const data::SyntheticCorpus heldout(corpus.seed() ^ 0x5EEDF00Dull, [&] {
    std::vector<std::string> names;
    for (data::Task t : corpus.tasks()) names.push_back(data::task_name(t));
    return names;
  }());
  const data::Batch batch = heldout.global_batch(0, 16, seq_len);
  const MicroBatch mb = make_micro_batch(batch.tokens.data<int32_t>(), batch.loss_mask.data<uint8_t>(),
                                         batch.task_ids.data<uint8_t>(), seq_len, 0, 16);
  std::vector<float> logits;
  MicroBatchResult res;
  model.forward_logits(mb, logits, &res);
  r.loss = res.ce_sum / double(std::max<int64_t>(res.n_valid, 1));
  return r;
}

}  // namespace foldmoe
