#include "train/evaluate.h"

#include <algorithm>

#include "data/tokenizer.h"

namespace foldmoe {

std::string greedy_generate(Model& model, const std::string& prompt, int max_new) {
  using data::CharTokenizer;
  std::vector<int32_t> ids = {CharTokenizer::kBos};
  for (int32_t t : CharTokenizer::encode(prompt)) ids.push_back(t);
  const int64_t V = model.config().model.vocab;
  std::vector<int32_t> out;
  std::vector<float> logits;
  for (int i = 0; i < max_new; ++i) {
    // One sequence (B = 1): rows are positions. Targets are unused by a forward-only pass.
    std::vector<int32_t> tokens = ids;
    tokens.push_back(0);
    const MicroBatch mb = make_micro_batch(tokens.data(), nullptr, nullptr, int64_t(ids.size()), 0, 1);
    model.forward_logits(mb, logits);
    const float* last = logits.data() + (int64_t(ids.size()) - 1) * V;
    const int32_t next = int32_t(std::max_element(last, last + V) - last);
    if (next == CharTokenizer::kEos) break;
    out.push_back(next);
    ids.push_back(next);
  }
  std::string text;
  for (int32_t t : out) text += (t >= CharTokenizer::kFirstChar && t < CharTokenizer::kVocabSize) ? CharTokenizer::id_to_char(t) : '?';
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
