#include "cli/version.h"

#include <string_view>

#include <cblas.h>
#include <mpi.h>
#include <CLI/Version.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#if __has_include(<toml++/impl/version.h>)
#include <toml++/impl/version.h>
#endif

#include "foldmoe_build_info.h"

namespace foldmoe::cli {
namespace {

std::string trimmed(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n')) s.remove_suffix(1);
  return std::string(s);
}

// The library that is loaded, not only the headers: MPI_Get_library_version may be called before
// MPI_Init (MPI 3.0 §8.1.1). Its text runs on with build details after the first comma.
std::string mpi_library() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int len = 0;
  MPI_Get_library_version(text, &len);
  const std::string_view v(text, size_t(len));
  return trimmed(v.substr(0, v.find(',')));
}

}  // namespace

std::string version_text() {
  int mpi_major = 0, mpi_minor = 0;
  MPI_Get_version(&mpi_major, &mpi_minor);
  std::string s = fmt::format("foldmoe {} ({} build, {})\n", FOLDMOE_VERSION, FOLDMOE_BUILD_TYPE, FOLDMOE_COMPILER);
  s += fmt::format("backends:\n  compute        CPU, fp32 GEMMs through {}\n", trimmed(openblas_get_config()));
  s +=
      fmt::format("  communication  MPI {}.{}: {} (one process without mpirun)\n", mpi_major, mpi_minor, mpi_library());
  s += "libraries:\n";
  std::string openblas = trimmed(OPENBLAS_VERSION);  // " OpenBLAS 0.3.21 "
  if (openblas.rfind("OpenBLAS ", 0) == 0) openblas.erase(0, 9);
  s += fmt::format("  OpenBLAS       {}\n", openblas);
#ifdef TOML_LIB_MAJOR
  s += fmt::format("  toml++         {}.{}.{}\n", TOML_LIB_MAJOR, TOML_LIB_MINOR, TOML_LIB_PATCH);
#endif
  s += fmt::format("  CLI11          {}\n", CLI11_VERSION);
  s += fmt::format("  fmt            {}.{}.{}\n", FMT_VERSION / 10000, FMT_VERSION / 100 % 100, FMT_VERSION % 100);
  s += fmt::format("  nlohmann-json  {}.{}.{}\n", NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR,
                   NLOHMANN_JSON_VERSION_PATCH);
  return s;
}

}  // namespace foldmoe::cli
