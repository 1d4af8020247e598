# The harness's own tests.
gantry_integration_test(integration_netns_hosts
                        SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_netns_hosts.sh TIMEOUT 60)
gantry_integration_test(integration_harness SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_harness.sh
                        TIMEOUT 60)
