# Control-plane integration tests: real gantry-scheduler processes on loopback.
gantry_integration_test(test_cp_replication
    SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_cp_replication.sh TIMEOUT 240)
