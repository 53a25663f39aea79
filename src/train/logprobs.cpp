#include "train/logprobs.h"

#include <algorithm>

#include "core/check.h"
#include "model/batch.h"

namespace foldmoe {

std::vector<SequenceScores> score_sequences(Model& model, const ProcessGroups& groups,
                                            const std::vector<std::vector<int32_t>>& sequences, bool with_logits) {
  const int64_t n = int64_t(sequences.size());
  const int DP = groups.dp->size(), d = groups.dp->rank();
  const int tp = groups.tp->size(), cp = groups.cp->size(), tp_rank = groups.tp->rank();
  const int64_t V = model.config().model.vocab;
  // Rows of a micro-batch: a multiple of 2·CP (zig-zag chunks) whose CP share splits over TP (SP).
  const int64_t multiple = int64_t(tp) * cp * (cp > 1 ? 2 : 1);
  int64_t rounds = (n + DP - 1) / DP;
  // Interleaved schedules take whole groups of pp micro-batches: extra rounds repeat round 0.
  const int pp = model.pipeline().pp();
  if (model.pipeline().vpp() > 1) rounds = (rounds + pp - 1) / pp * pp;

  // The flat results: sequence i's scores start at offset[i] (positions), every rank writes the
  // ones it computed and a sum over the world assembles them (x + 0 = x: exact).
  std::vector<int64_t> offset(size_t(n + 1), 0);
  for (int64_t i = 0; i < n; ++i) {
    FOLDMOE_CHECK(sequences[size_t(i)].size() >= 2, "sequence {} has fewer than 2 tokens", i);
    offset[size_t(i + 1)] = offset[size_t(i)] + int64_t(sequences[size_t(i)].size()) - 1;
  }
  std::vector<float> lp(size_t(offset.back()), 0.0f), lg(with_logits ? size_t(offset.back() * V) : 0, 0.0f);

  std::vector<MicroBatch> mbs;
  std::vector<MoEStepContext> ctxs;
  std::vector<int64_t> seq_of;  // sequence this rank scores in round k (−1: a filler)
  for (int64_t k = 0; k < rounds; ++k) {
    const int64_t first = k < (n + DP - 1) / DP ? k * DP : 0;
    int64_t S = 0;  // predicted positions of the round's longest sequence, rounded up
    for (int64_t j = first; j < std::min(n, first + DP); ++j)
      S = std::max<int64_t>(S, int64_t(sequences[size_t(j)].size()) - 1);
    S = (S + multiple - 1) / multiple * multiple;
    const int64_t mine = first + d;
    const bool real = k * DP + d < n && first == k * DP;
    const std::vector<int32_t>& seq = sequences[size_t(real ? mine : first)];
    std::vector<int32_t> tokens(size_t(S + 1), 0);
    std::vector<uint8_t> mask(size_t(S), 0);
    std::copy(seq.begin(), seq.end(), tokens.begin());
    std::fill_n(mask.begin(), seq.size() - 1, uint8_t(1));
    mbs.push_back(cp_split(make_micro_batch(tokens.data(), mask.data(), nullptr, S, 0, 1), cp, groups.cp->rank()));
    seq_of.push_back(real ? mine : -1);
    MoEStepContext ctx;
    ctx.training = false;  // no aux-loss gradients, expert-bias counts or jitter
    ctx.dp_size = DP;
    ctxs.push_back(ctx);
  }

  model.set_head_capture({.logprobs = true, .logits = with_logits});
  model.run_pipeline_forward(mbs, ctxs, [&](const ChunkResult& r) {
    if (!r.has_loss) return;
    const int64_t i = seq_of[size_t(r.micro_batch)];
    if (i < 0) return;
    const MicroBatch& mb = mbs[size_t(r.micro_batch)];
    const int64_t len = offset[size_t(i + 1)] - offset[size_t(i)];
    for (int64_t row = 0; row < mb.N(); ++row) {
      const int64_t pos = mb.positions_N[size_t(row)];
      if (pos >= len) continue;  // padding
      const int64_t at = offset[size_t(i)] + pos;
      if (tp_rank == 0) lp[size_t(at)] = r.logprob_N[size_t(row)];  // identical on every TP rank
      if (with_logits)
        std::copy_n(r.logits_NV.begin() + row * r.vocab_rows, r.vocab_valid, lg.begin() + at * V + r.vocab_first);
    }
  });
  model.set_head_capture({});
  if (groups.world->size() > 1) {
    groups.world->all_reduce(lp.data(), int64_t(lp.size()));
    if (with_logits) groups.world->all_reduce(lg.data(), int64_t(lg.size()));
  }

  std::vector<SequenceScores> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t a = offset[size_t(i)], b = offset[size_t(i + 1)];
    out[size_t(i)].logprobs.assign(lp.begin() + a, lp.begin() + b);
    if (with_logits) out[size_t(i)].logits.assign(lg.begin() + a * V, lg.begin() + b * V);
  }
  return out;
}

}  // namespace foldmoe
