#include "train/config_json.h"

#include <variant>

#include "config/config_fields.h"

namespace foldmoe {

nlohmann::json config_to_json(const Config& c) {
  nlohmann::json j = nlohmann::json::object();
  for (const ConfigField& f : config_fields()) {
    nlohmann::json v;
    std::visit(
        [&](const auto& p) {
          using P = std::remove_cvref_t<decltype(p)>;
          if constexpr (std::is_same_v<P, ConstEnumRef>) {
            v = std::string(p.codec->print(p.value));
          } else if constexpr (std::is_same_v<P, ConstDoublePairRef>) {
            v = nlohmann::json::array({*p.first, *p.second});
          } else {
            using T = std::remove_cvref_t<decltype(*p)>;
            if constexpr (std::is_same_v<T, std::optional<double>> || std::is_same_v<T, std::optional<int>>) {
              v = p->has_value() ? nlohmann::json(**p) : nlohmann::json(nullptr);
            } else {
              v = *p;
            }
          }
        },
        f.cref(c));
    j[std::string(f.section)][std::string(f.key)] = v;
  }
  return j;
}

}  // namespace foldmoe
