# gantry_autoscale: the autoscaler's windows and decisions (pure logic, no I/O).
add_library(gantry_autoscale STATIC ${CMAKE_CURRENT_SOURCE_DIR}/autoscale.c)
target_link_libraries(gantry_autoscale PUBLIC gantry_common m)
set_target_properties(gantry_autoscale PROPERTIES C_VISIBILITY_PRESET hidden)
