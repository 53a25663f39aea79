# Tests beyond the GoogleTest unit suite: PyTorch reference checks and end-to-end CLI tests.
# They need Debian's python3 with torch; a missing dependency fails the test loudly.
set(FOLDMOE_PYTHON /usr/bin/python3 CACHE FILEPATH "Python interpreter with torch for reference tests")

add_test(NAME reference.selftests COMMAND ${CMAKE_SOURCE_DIR}/tests/reference/run_selftests.sh)
set_tests_properties(reference.selftests PROPERTIES ENVIRONMENT "PYTHON=${FOLDMOE_PYTHON}")

file(GLOB FOLDMOE_REFERENCE_CONFIGS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/reference/configs/*.toml)
foreach(cfg ${FOLDMOE_REFERENCE_CONFIGS})
  get_filename_component(name ${cfg} NAME_WE)
  add_test(NAME reference.model.${name}
           COMMAND ${CMAKE_SOURCE_DIR}/tests/reference/check_config.sh $<TARGET_FILE:foldmoe> ${cfg})
  set_tests_properties(reference.model.${name} PROPERTIES ENVIRONMENT "PYTHON=${FOLDMOE_PYTHON}")
endforeach()

file(GLOB FOLDMOE_E2E_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/e2e/test_*.py)
foreach(t ${FOLDMOE_E2E_TESTS})
  get_filename_component(name ${t} NAME_WE)
  add_test(NAME e2e.${name} COMMAND ${FOLDMOE_PYTHON} ${t} $<TARGET_FILE:foldmoe>)
  set_tests_properties(e2e.${name} PROPERTIES ENVIRONMENT "OPENBLAS_NUM_THREADS=1" TIMEOUT 900)
endforeach()

# Communicator and process-group tests under mpirun (tests/parallel/). A failure on any rank makes
# the executable exit non-zero on every rank; only rank 0 prints the GoogleTest report.
foreach(np 2 3 4 8)
  add_test(NAME parallel.comm.np${np}
           COMMAND ${MPIEXEC_EXECUTABLE} --allow-run-as-root --oversubscribe --mca mpi_yield_when_idle 1
                   -np ${np} $<TARGET_FILE:foldmoe_parallel_tests> --gtest_brief=1)
  set_tests_properties(parallel.comm.np${np} PROPERTIES ENVIRONMENT "OPENBLAS_NUM_THREADS=1" TIMEOUT 180
                       PROCESSORS 2)
endforeach()
