# gantry_placement: node selection for new replicas (pure logic, no I/O).
add_library(gantry_placement STATIC ${CMAKE_CURRENT_SOURCE_DIR}/placement.c)
target_link_libraries(gantry_placement PUBLIC gantry_common)
set_target_properties(gantry_placement PROPERTIES C_VISIBILITY_PRESET hidden)
