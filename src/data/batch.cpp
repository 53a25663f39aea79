#include "data/batch.h"

namespace foldmoe::data {

int64_t Batch::valid_tokens() const {
  const uint8_t* mask = loss_mask.data<uint8_t>();
  int64_t n = 0;
  for (int64_t i = 0; i < loss_mask.numel(); ++i) n += mask[i] != 0;
  return n;
}

Batch Batch::slice(int64_t begin, int64_t end) const {
  return Batch{tokens.rows(begin, end), loss_mask.rows(begin, end), task_ids.rows(begin, end)};
}

}  // namespace foldmoe::data
