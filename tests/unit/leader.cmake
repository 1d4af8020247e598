gantry_unit_test(test_sch_reconcile SOURCES test_sch_reconcile.c LIBS gantry_fleet)
# The leader's bookkeeping of agents: liveness, replica status batching, assignments.
gantry_unit_test(test_fleet_agents SOURCES test_fleet_agents.c LIBS gantry_fleet)
