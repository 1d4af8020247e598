# gantry_scheduler: the control-plane server as a library (Raft node, state machine on
# SQLite, API handlers), and the gantry-scheduler binary around it. The HTTP server itself
# is the gantry_http library of http.cmake.
set(GANTRY_SCHEDULER_SOURCES
    ${CMAKE_CURRENT_SOURCE_DIR}/command.c
    ${CMAKE_CURRENT_SOURCE_DIR}/fsm.c
    ${CMAKE_CURRENT_SOURCE_DIR}/node.c)
add_library(gantry_scheduler STATIC ${GANTRY_SCHEDULER_SOURCES})
target_link_libraries(gantry_scheduler PUBLIC gantry_proto gantry_common PkgConfig::RAFT
                      PkgConfig::UV PkgConfig::SQLITE3 PkgConfig::JANSSON)
set_target_properties(gantry_scheduler PROPERTIES C_VISIBILITY_PRESET hidden)
