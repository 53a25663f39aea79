#include "parallel/logical_params.h"

#include <map>

#include <nlohmann/json.hpp>

namespace foldmoe {

std::vector<std::string> all_gather_strings(Communicator& comm, const std::string& mine) {
  // Lengths travel as floats (exact below 2^24) and bytes as one float each: the Communicator
  // interface carries floats only, and this runs once per checkpoint.
  const int P = comm.size();
  FOLDMOE_CHECK(mine.size() < (1u << 24), "string of {} bytes too long to gather", mine.size());
  float len = float(mine.size());
  std::vector<float> lens(static_cast<size_t>(P));
  comm.all_gather(&len, lens.data(), 1);
  std::vector<int64_t> counts(static_cast<size_t>(P));
  int64_t total = 0;
  for (int i = 0; i < P; ++i) total += counts[size_t(i)] = int64_t(lens[size_t(i)]);
  std::vector<float> send(mine.begin(), mine.end()), recv(static_cast<size_t>(total));
  for (size_t i = 0; i < mine.size(); ++i) send[i] = float(static_cast<unsigned char>(mine[i]));
  comm.all_gather_v(send.data(), recv.data(), counts);
  std::vector<std::string> out;
  int64_t at = 0;
  for (int i = 0; i < P; ++i) {
    std::string s;
    for (int64_t k = 0; k < counts[size_t(i)]; ++k) s.push_back(char(static_cast<unsigned char>(recv[size_t(at + k)])));
    at += counts[size_t(i)];
    out.push_back(std::move(s));
  }
  return out;
}

namespace {

nlohmann::json describe(const ParamArena& a) {
  nlohmann::json j = nlohmann::json::array();
  for (int i = 0; i < a.size(); ++i) {
    const ParamSpec& s = a.spec(i);
    j.push_back({s.name, s.global_shape, s.weight_decay, s.sequence_parallel});
  }
  return j;
}

// The logical arena: every parameter of the world once, sorted by name (layout-independent).
std::unique_ptr<ParamArena> build_logical(ArenaKind kind, const std::vector<std::string>& per_rank, const char* key) {
  std::map<std::string, ParamSpec> specs;
  for (const std::string& r : per_rank) {
    const nlohmann::json parsed = nlohmann::json::parse(r);  // must outlive the loop below
    for (const auto& p : parsed.at(key)) {
      ParamSpec s;
      s.name = p[0].get<std::string>();
      s.shape = p[1].get<Shape>();
      s.global_shape = s.shape;
      s.weight_decay = p[2].get<bool>();
      s.sequence_parallel = p[3].get<bool>();
      auto [it, fresh] = specs.emplace(s.name, s);
      FOLDMOE_CHECK(fresh || it->second.shape == s.shape, "ranks disagree on the shape of {}", s.name);
    }
  }
  auto a = std::make_unique<ParamArena>(kind);
  for (auto& [name, s] : specs) a->add(s);
  a->allocate();
  return a;
}

}  // namespace

LogicalParams::LogicalParams(const ParamArena& dense, const ParamArena& expert, const ProcessGroups& groups)
    : groups_(groups) {
  const nlohmann::json mine = {{"dense", describe(dense)}, {"expert", describe(expert)}};
  const std::vector<std::string> all = all_gather_strings(*groups.world, mine.dump());
  dense_ = build_logical(ArenaKind::Dense, all, "dense");
  expert_ = build_logical(ArenaKind::Expert, all, "expert");
}

std::vector<float> LogicalParams::gather(const ParamArena& local, const float* values) const {
  const ParamArena& L = local.kind() == ArenaKind::Dense ? *dense_ : *expert_;
  std::vector<float> out(size_t(L.total()), 0.0f);
  const bool replica_owner =
      local.kind() == ArenaKind::Dense ? groups_.dp_cp->rank() == 0 : groups_.edp->rank() == 0;
  if (replica_owner)
    for (int i = 0; i < local.size(); ++i) {
      const ParamSpec& s = local.spec(i);
      if (s.sequence_parallel && groups_.tp->rank() != 0) continue;  // TP-replicated: tp rank 0 owns it
      if (s.tied_copy) continue;                                     // the first stage's copy holds the same values
      const int li = L.find(s.name);
      FOLDMOE_CHECK(li >= 0, "parameter {} missing from the logical view", s.name);
      float* dst = out.data() + L.offset(li);
      const float* src = values + local.offset(i);
      const int64_t n = shape_numel(s.shape);
      for (int64_t k = 0; k < n; ++k) {
        const int64_t g = s.global_index ? s.global_index(k) : k;
        if (g >= 0) dst[g] = src[k];
      }
    }
  groups_.world->all_reduce(out.data(), int64_t(out.size()));
  return out;
}

void LogicalParams::scatter(const ParamArena& local, const float* logical_values, float* values) const {
  const ParamArena& L = local.kind() == ArenaKind::Dense ? *dense_ : *expert_;
  for (int i = 0; i < local.size(); ++i) {
    const ParamSpec& s = local.spec(i);
    const float* src = logical_values + L.offset(L.find(s.name));
    float* dst = values + local.offset(i);
    const int64_t n = shape_numel(s.shape);
    for (int64_t k = 0; k < n; ++k) {
      const int64_t g = s.global_index ? s.global_index(k) : k;
      dst[k] = g >= 0 ? src[g] : 0.0f;
    }
  }
}

}  // namespace foldmoe
