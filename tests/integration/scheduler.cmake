# Control-plane integration tests: real gantry-scheduler processes on loopback. Each test
# picks its own port range (CP_BASE in cp/cluster.sh), so that suites of several builds on one
# machine do not meet; within one run they take turns (LOCK control_plane): each loads the
# machine with three servers under writes.
gantry_integration_test(test_cp_replication
    SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_cp_replication.sh TIMEOUT 600 LOCK control_plane)
gantry_integration_test(test_cp_snapshot
    SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_cp_snapshot.sh TIMEOUT 600 LOCK control_plane)
gantry_integration_test(test_cp_membership
    SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_cp_membership.sh TIMEOUT 400 LOCK control_plane)
gantry_integration_test(test_cp_quorum
    SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_cp_quorum.sh TIMEOUT 180 LOCK control_plane)
gantry_integration_test(test_cp_api
    SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_cp_api.sh TIMEOUT 180 LOCK control_plane)
# Operations after faults (docs/operations.md): members, leadership transfer, snapshot save
# and restore into new clusters, refused files, --force-new-cluster after a lost majority.
gantry_integration_test(test_cp_operations
    SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_cp_operations.sh TIMEOUT 1000 LOCK control_plane)
gantry_integration_test(test_cp_divergence
    SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_cp_divergence.sh TIMEOUT 900 LOCK control_plane)
# Damaged files at a start: a state database moved aside and rebuilt from the leader's image,
# damaged or missing Raft segments refused, a lone server that cannot rebuild refuses.
gantry_integration_test(test_cp_damage
    SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_cp_damage.sh TIMEOUT 1200 LOCK control_plane)
# Disk space: the NOSPACE alarm refuses writes and keeps reads; a server whose disk fills to
# the last byte leaves the cluster, serves ?stale reads and starts afresh once it has space.
gantry_integration_test(test_cp_nospace
    SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_cp_nospace.sh TIMEOUT 600 LOCK control_plane)
