# Control-plane unit tests.
gantry_unit_test(test_sch_command SOURCES test_sch_command.c LIBS gantry_state)
gantry_unit_test(test_sch_fsm SOURCES test_sch_fsm.c LIBS gantry_state)
gantry_unit_test(test_sch_autoscaler SOURCES test_sch_autoscaler.c LIBS gantry_fleet)
gantry_unit_test(test_sch_node SOURCES test_sch_node.c LIBS gantry_raft TIMEOUT 300)
gantry_unit_test(test_libraft_aio SOURCES test_libraft_aio.c LIBS gantry_raft)
gantry_unit_test(test_libraft_match SOURCES test_libraft_match.c LIBS gantry_raft)
gantry_unit_test(test_segment_check SOURCES test_segment_check.c LIBS gantry_raft TIMEOUT 120)
