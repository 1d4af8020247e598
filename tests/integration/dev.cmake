gantry_integration_test(test_ctl_dev SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_ctl_dev.sh
                        TIMEOUT 180)
gantry_integration_test(test_quickstart SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_quickstart.sh
                        TIMEOUT 240)
