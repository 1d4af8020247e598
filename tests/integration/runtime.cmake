# The container runtime (gantry-runtime on busybox bundles; root, cgroups, namespaces).
gantry_integration_test(test_runtime_basic SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_runtime_basic.sh
                        TIMEOUT 120)
gantry_integration_test(test_runtime_limits
                        SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_runtime_limits.sh TIMEOUT 120)
gantry_integration_test(test_runtime_churn SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_runtime_churn.sh
                        TIMEOUT 180)
add_executable(rt_api_check ${CMAKE_CURRENT_SOURCE_DIR}/runtime/rt_api_check.c)
target_link_libraries(rt_api_check PRIVATE gantry_runtime PkgConfig::JANSSON Threads::Threads)
gantry_integration_test(test_runtime_api SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_runtime_api.sh
                        TIMEOUT 90)
gantry_integration_test(test_runtime_hooks
                        SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_runtime_hooks.sh TIMEOUT 90)
