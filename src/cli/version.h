// `foldmoe --version`: the version (CMake's project VERSION), the build, its compute and
// communication backends and the versions of the libraries it was built with.
#pragma once

#include <string>

namespace foldmoe::cli {

std::string version_text();

}  // namespace foldmoe::cli
