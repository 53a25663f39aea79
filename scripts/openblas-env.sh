# Sourced by the scripts that run foldmoe for speed (the main job, benchmarks). OpenBLAS 0.3.21
# (Debian 12) does not know every CPU model: on one it does not recognise (a virtual "Intel Xeon
# Processor", for one) it falls back to its generic Prescott kernels, 4-6x slower than the AVX-512
# ones the CPU can run (sgemm 25.6 vs 153.8 GFLOP/s on one core of the development machine). When
# OpenBLAS would fall back, name the kernels the CPU has; a value the user set is kept.
# Needs build/foldmoe (it asks the library foldmoe links which core it picked).
# (The probe's output is captured first: `| grep -q` would end the pipe early, and under pipefail
# the SIGPIPE of the writer would read as "not Prescott".)
openblas_probe=$( { [ -x build/foldmoe ] && OPENBLAS_VERBOSE=2 build/foldmoe --version 2>&1; } || true)
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [[ "$openblas_probe" == *"Core: Prescott"* ]]; then
  flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
  if [[ " $flags " == *" avx512f "* && " $flags " == *" avx512bw "* && " $flags " == *" avx512vl "* &&
        " $flags " == *" avx512dq "* ]]; then
    export OPENBLAS_CORETYPE=SkylakeX
  elif [[ " $flags " == *" avx2 "* && " $flags " == *" fma "* ]]; then
    export OPENBLAS_CORETYPE=Haswell
  fi
  [ -n "${OPENBLAS_CORETYPE:-}" ] && echo "OpenBLAS does not recognise this CPU: using its $OPENBLAS_CORETYPE kernels (OPENBLAS_CORETYPE)" >&2
  unset flags
fi
unset openblas_probe
