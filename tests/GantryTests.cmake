# Helpers to register tests with CTest.

# gantry_unit_test(NAME SOURCES src... LIBS lib... [TIMEOUT s])
# Builds tests/unit/NAME as a cmocka program and registers it with label "unit".
function(gantry_unit_test name)
    cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS" ${ARGN})
    if(NOT T_TIMEOUT)
        set(T_TIMEOUT 60)
    endif()
    add_executable(${name} ${T_SOURCES})
    target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT ${T_TIMEOUT}
                         SKIP_RETURN_CODE 77)
endfunction()

# gantry_integration_test(NAME SCRIPT path [TIMEOUT s] [LOCK name])
# Registers a script (run with bash from the build directory) with label "integration".
# The script finds the binaries through GANTRY_BUILD_DIR and the sources through
# GANTRY_SOURCE_DIR, and its TIMEOUT through GANTRY_TEST_TIMEOUT (lib.sh fails a run whose
# waits could outlast it). Tests that share a LOCK never run at the same time: the heavy
# suites (several servers, agents and containers) take one each, so that at most one of
# a kind loads the machine.
function(gantry_integration_test name)
    cmake_parse_arguments(T "" "SCRIPT;TIMEOUT;LOCK" "" ${ARGN})
    if(NOT T_TIMEOUT)
        set(T_TIMEOUT 300)
    endif()
    add_test(NAME ${name} COMMAND bash ${T_SCRIPT})
    set_tests_properties(${name} PROPERTIES
        LABELS integration TIMEOUT ${T_TIMEOUT} SKIP_RETURN_CODE 77
        ENVIRONMENT "GANTRY_BUILD_DIR=${PROJECT_BINARY_DIR};GANTRY_SOURCE_DIR=${PROJECT_SOURCE_DIR};GANTRY_TEST_TIMEOUT=${T_TIMEOUT};LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/lsan.supp:print_suppressions=0")
    if(T_LOCK)
        set_tests_properties(${name} PROPERTIES RESOURCE_LOCK ${T_LOCK})
    endif()
endfunction()
