// Rollout generation (docs/rl.md §2 stage 2): n sampled responses per prompt with a KV cache, per-token
// log-probs and entropies, finish reasons, and router records for router replay (docs/rl.md §12).
//
// Prompts are prefilled once (batched, no padding: every sequence keeps its own positions) and the
// prefilled cache is forked into the n samples. Decoding then runs one token per active sequence per
// step; a sequence stops at EOS (EOS is part of the response) or at max_new_tokens. At most
// max_batch sequences are decoded at once; the next prompts are admitted as sequences finish.
// Token j of sample s of prompt p draws u = sampling_uniform(seed, step, prompt_ids[p], s, j), so
// the responses do not depend on batch composition (up to fp32 rounding of the logits).
#pragma once

#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "model/model.h"
#include "rl/sampling.h"

namespace foldmoe::rl {

enum class FinishReason { Eos, Length };
const char* finish_reason_name(FinishReason r);

struct RolloutOptions {
  int max_new_tokens = 64;
  int samples_per_prompt = 1;
  uint64_t seed = 0;
  int64_t step = 0;
  int32_t eos_id = 2;  // data::CharTokenizer::kEos
  std::vector<int32_t> stop_ids;  // further ids that end a response like eos (a chat's end-of-turn)
  int max_batch = 0;   // sequences decoded at once (0 = all prompts x samples)
  bool record_routing = true;  // fill Response::routing (MoE models)
  std::vector<int64_t> prompt_ids;  // RNG key of each prompt (default: its index)
  // Ranks that share the model's MoE collectives (expert parallelism) but may generate different
  // prompts (or none): with it set, every member makes the same sequence of forward calls, empty
  // ones while it has nothing left to decode. Null = this process decodes alone.
  Communicator* lockstep = nullptr;
};

struct Response {
  int64_t prompt = 0;  // index into the prompt list
  int sample = 0;
  std::vector<int32_t> tokens;          // generated tokens (incl. the EOS when finish == Eos)
  std::vector<float> logprob_sample;    // per token, under the sampling distribution
  std::vector<float> logprob_policy;    // per token, under the unmodified policy (T = 1)
  std::vector<float> entropy;           // per token, entropy of the T = 1 distribution
  std::vector<float> temperature;       // per token, T_t used (0 = greedy)
  FinishReason finish = FinishReason::Length;
  // Router records of prompt + response: [P + L, MoE layers, k] expert ids (ascending per layer).
  // Position P + L - 1 (the last response token, never fed back) holds -1 = "route live".
  std::vector<int32_t> routing;
};

// Responses ordered by (prompt, sample). Every prompt must be non-empty (callers prepend <bos>).
std::vector<Response> generate(Model& model, const std::vector<std::vector<int32_t>>& prompts,
                               const SamplingParams& sampling, const RolloutOptions& opt);

}  // namespace foldmoe::rl
