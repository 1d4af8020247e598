gantry_integration_test(test_ctl_dev SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_ctl_dev.sh
                        TIMEOUT 180)
gantry_integration_test(test_quickstart SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_quickstart.sh
                        TIMEOUT 240)
gantry_integration_test(test_local_cluster
                        SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_local_cluster.sh TIMEOUT 180
                        LOCK multi_host)
