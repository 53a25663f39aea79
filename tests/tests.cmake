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
