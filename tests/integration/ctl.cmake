# gantry CLI integration tests: the real binary against a live single-server control plane
# on loopback (ports 17710-17712).
gantry_integration_test(test_ctl_cli
    SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_ctl_cli.sh TIMEOUT 180)
gantry_integration_test(test_ctl_fake
    SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_ctl_fake.sh TIMEOUT 120)
