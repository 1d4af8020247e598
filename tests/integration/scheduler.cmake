# Control-plane integration tests: real gantry-scheduler processes on loopback. Each test
# uses its own port range (CP_BASE in the script) so they can run in parallel.
gantry_integration_test(test_cp_replication
    SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_cp_replication.sh TIMEOUT 240)
gantry_integration_test(test_cp_snapshot
    SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_cp_snapshot.sh TIMEOUT 240)
gantry_integration_test(test_cp_membership
    SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_cp_membership.sh TIMEOUT 240)
gantry_integration_test(test_cp_quorum
    SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_cp_quorum.sh TIMEOUT 180)
gantry_integration_test(test_cp_api
    SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_cp_api.sh TIMEOUT 180)
