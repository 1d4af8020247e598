# The container runtime's unit tests (no privileges needed).
gantry_unit_test(test_rt_config SOURCES test_rt_config.c LIBS gantry_runtime PkgConfig::JANSSON)
gantry_unit_test(test_rt_cgroup SOURCES test_rt_cgroup.c LIBS gantry_runtime)
gantry_unit_test(test_rt_devices SOURCES test_rt_devices.c LIBS gantry_runtime)
gantry_unit_test(test_rt_cgroup_v2 SOURCES test_rt_cgroup_v2.c LIBS gantry_runtime)
