#include "train/async_checkpoint.h"

#include <cstdio>
#include <exception>

#include "core/check.h"
#include "core/fault_inject.h"

namespace foldmoe::train {

namespace {

std::unique_ptr<ParamArena> copy_arena(const ParamArena& a) {
  auto out = std::make_unique<ParamArena>(a.kind());
  for (int i = 0; i < a.size(); ++i) out->add(a.spec(i));
  out->allocate();
  FOLDMOE_CHECK(out->total() <= a.total(), "copied arena is larger than its source");
  std::copy(a.params(), a.params() + out->total(), out->params());
  return out;
}

}  // namespace

TrainState CheckpointSnapshot::view() {
  TrainState st;
  st.step = step;
  st.dense = dense.get();
  st.expert = expert.get();
  if (has_moments) {
    st.adam_m_dense = &m_dense;
    st.adam_v_dense = &v_dense;
    if (expert) {
      st.adam_m_expert = &m_expert;
      st.adam_v_expert = &v_expert;
    }
  }
  st.buffers = buffers;
  st.config_toml = config_toml;
  st.extra = extra;
  return st;
}

std::unique_ptr<CheckpointSnapshot> CheckpointSnapshot::copy_of(const TrainState& state) {
  FOLDMOE_CHECK(state.dense != nullptr, "snapshot of a state without a dense arena");
  auto s = std::make_unique<CheckpointSnapshot>();
  s->step = state.step;
  s->dense = copy_arena(*state.dense);
  if (state.expert) s->expert = copy_arena(*state.expert);
  s->has_moments = state.adam_m_dense != nullptr;
  // Arena offsets of the copy equal the source's (same specs, added in order), so the moments
  // copy element for element, cut to the copy's total.
  const auto moment = [](const std::vector<float>* v, const ParamArena* a) {
    return v && a ? std::vector<float>(v->begin(), v->begin() + a->total()) : std::vector<float>();
  };
  if (s->has_moments) {
    s->m_dense = moment(state.adam_m_dense, s->dense.get());
    s->v_dense = moment(state.adam_v_dense, s->dense.get());
    s->m_expert = moment(state.adam_m_expert, s->expert.get());
    s->v_expert = moment(state.adam_v_expert, s->expert.get());
  }
  s->buffers = state.buffers;
  s->config_toml = state.config_toml;
  s->extra = state.extra;
  return s;
}

AsyncCheckpointWriter::~AsyncCheckpointWriter() {
  if (!pending_) return;
  thread_.join();
  if (!error_.empty())
    std::fprintf(stderr, "foldmoe: error: checkpoint error C5: the background write of checkpoint '%s' failed: %s\n",
                 dir_.c_str(), error_.c_str());
}

void AsyncCheckpointWriter::submit(std::string dir, std::unique_ptr<CheckpointSnapshot> snapshot, SaveOptions options) {
  FOLDMOE_CHECK(snapshot != nullptr, "submitting an empty checkpoint snapshot");
  wait();
  dir_ = std::move(dir);
  error_.clear();
  done_.store(false, std::memory_order_relaxed);
  pending_ = true;
  // The job owns the snapshot: nothing else holds a pointer into it.
  thread_ = std::thread([this, snap = std::move(snapshot), options = std::move(options)]() mutable {
    try {
      inject_fault("write", snap->step);
      save_checkpoint(dir_, snap->view(), options);
    } catch (const std::exception& e) {
      error_ = e.what();
      if (error_.empty()) error_ = "unknown error";
    } catch (...) {
      error_ = "unknown error";
    }
    snap.reset();  // free the copy before reporting completion
    done_.store(true, std::memory_order_release);
  });
}

std::optional<std::string> AsyncCheckpointWriter::poll() {
  if (!pending_ || !done_.load(std::memory_order_acquire)) return std::nullopt;
  return collect();
}

std::optional<std::string> AsyncCheckpointWriter::wait() {
  if (!pending_) return std::nullopt;
  return collect();
}

std::optional<std::string> AsyncCheckpointWriter::collect() {
  thread_.join();
  pending_ = false;
  if (!error_.empty())
    user_error(
        "checkpoint error C5: the background write of checkpoint '{}' failed: {}\n  the run stops; the "
        "checkpoints saved before it are complete and unchanged\n  fix: make the checkpoint directory writable "
        "(free space, permissions) and continue with --checkpoint.load=auto, or set --checkpoint.async=false",
        dir_, error_);
  return dir_;
}

}  // namespace foldmoe::train
