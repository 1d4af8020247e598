gantry_unit_test(test_placement SOURCES test_placement.c LIBS gantry_fleet)
