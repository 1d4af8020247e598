# Autoscaler decisions replayed from recorded samples.
gantry_unit_test(test_autoscale SOURCES test_autoscale.c LIBS gantry_fleet)
