#include "train/logical_checkpoint.h"

#include <algorithm>

#include "core/fault_inject.h"
#include "parallel/logical_params.h"
#include "train/checkpoint.h"

namespace foldmoe {

namespace {
// Points a TrainState at logical moment buffers (dense m, v, expert m, v).
void attach_moments(train::TrainState& st, std::vector<float>& md, std::vector<float>& vd, std::vector<float>& me,
                    std::vector<float>& ve) {
  st.adam_m_dense = &md;
  st.adam_v_dense = &vd;
  st.adam_m_expert = &me;
  st.adam_v_expert = &ve;
}
}  // namespace

std::map<std::string, std::vector<float>> all_stage_buffers(Model& model, const ProcessGroups& groups) {
  std::map<std::string, std::vector<float>> buffers = model.buffers();
  if (groups.pp->size() > 1) {
    const nlohmann::json mine = buffers;
    for (const std::string& other : all_gather_strings(*groups.pp, mine.dump())) {
      const nlohmann::json theirs = nlohmann::json::parse(other);  // must outlive the loop below
      for (const auto& [name, values] : theirs.items()) buffers[name] = values.get<std::vector<float>>();
    }
  }
  return buffers;
}

void save_logical_checkpoint(const std::string& dir, Model& model, const ProcessGroups& groups,
                             const LocalMoments* moments, int64_t step, const std::string& config_toml,
                             const nlohmann::json& extra, train::AsyncCheckpointWriter* async) {
  ParamArena& dense = model.dense();
  ParamArena& expert = model.expert();
  LogicalParams lp(dense, expert, groups);
  const std::vector<float> pd = lp.gather(dense, dense.params()), pe = lp.gather(expert, expert.params());
  std::map<std::string, std::vector<float>> buffers = all_stage_buffers(model, groups);
  std::vector<float> lmd, lvd, lme, lve;
  if (moments) {
    lmd = lp.gather(dense, moments->m_dense.data());
    lvd = lp.gather(dense, moments->v_dense.data());
    lme = lp.gather(expert, moments->m_expert.data());
    lve = lp.gather(expert, moments->v_expert.data());
  }
  if (groups.world->rank() == 0) {
    std::copy(pd.begin(), pd.end(), lp.dense().params());
    std::copy(pe.begin(), pe.end(), lp.expert().params());
    if (async) {
      // The gathered copies become the snapshot (moved, not copied again): the model's own
      // arenas and moments are never read by the background write.
      auto snap = std::make_unique<train::CheckpointSnapshot>();
      snap->step = step;
      snap->dense = lp.release(ArenaKind::Dense);
      snap->expert = lp.release(ArenaKind::Expert);
      snap->dense->free_grads();  // a snapshot holds values only
      snap->expert->free_grads();
      snap->has_moments = moments != nullptr;
      snap->m_dense = std::move(lmd);
      snap->v_dense = std::move(lvd);
      snap->m_expert = std::move(lme);
      snap->v_expert = std::move(lve);
      snap->buffers = std::move(buffers);
      snap->config_toml = config_toml;
      snap->extra = extra;
      async->submit(dir, std::move(snap));
    } else {
      train::TrainState st;
      st.step = step;
      st.dense = &lp.dense();
      st.expert = &lp.expert();
      if (moments) attach_moments(st, lmd, lvd, lme, lve);
      st.buffers = buffers;
      st.config_toml = config_toml;
      st.extra = extra;
      inject_fault("write", step);
      train::save_checkpoint(dir, st);
    }
  }
  groups.world->barrier();
}

LoadedCheckpoint load_logical_checkpoint(const std::string& dir, Model& model, const ProcessGroups& groups,
                                         LocalMoments* moments) {
  ParamArena& dense = model.dense();
  ParamArena& expert = model.expert();
  LogicalParams lp(dense, expert, groups);
  std::vector<float> lmd(size_t(lp.dense().total())), lvd(lmd.size()), lme(size_t(lp.expert().total())),
      lve(lme.size());
  train::TrainState st;
  st.dense = &lp.dense();
  st.expert = &lp.expert();
  if (moments) attach_moments(st, lmd, lvd, lme, lve);
  st.buffers = all_stage_buffers(model, groups);  // the whole model's names: a checkpoint holds every stage's
  train::load_checkpoint(dir, st);                // every rank reads and validates the whole checkpoint
  lp.scatter(dense, lp.dense().params(), dense.params());
  lp.scatter(expert, lp.expert().params(), expert.params());
  model.set_buffers(st.buffers);
  if (moments) {
    const auto local = [&](ParamArena& a, const std::vector<float>& logical) {
      std::vector<float> out(size_t(a.total()), 0.0f);
      lp.scatter(a, logical.data(), out.data());
      return out;
    };
    moments->m_dense = local(dense, lmd);
    moments->v_dense = local(dense, lvd);
    moments->m_expert = local(expert, lme);
    moments->v_expert = local(expert, lve);
  }
  return {st.step, st.extra};
}

}  // namespace foldmoe
