# gantry_scheduler: the control-plane server as a library (Raft node, state machine on
# SQLite, API handlers), and the gantry-scheduler binary around it. The HTTP server itself
# is the gantry_http library of http.cmake.
set(GANTRY_SCHEDULER_SOURCES
    ${CMAKE_CURRENT_SOURCE_DIR}/arena.c
    ${CMAKE_CURRENT_SOURCE_DIR}/command.c
    ${CMAKE_CURRENT_SOURCE_DIR}/fsm.c
    ${CMAKE_CURRENT_SOURCE_DIR}/node.c
    ${CMAKE_CURRENT_SOURCE_DIR}/raft_match.c
    ${CMAKE_CURRENT_SOURCE_DIR}/reconcile.c
    ${CMAKE_CURRENT_SOURCE_DIR}/autoscaler.c)
add_library(gantry_scheduler STATIC ${GANTRY_SCHEDULER_SOURCES})
target_link_libraries(gantry_scheduler PUBLIC gantry_proto gantry_common gantry_placement gantry_autoscale PkgConfig::RAFT
                      PkgConfig::UV PkgConfig::SQLITE3 PkgConfig::JANSSON)
set_target_properties(gantry_scheduler PROPERTIES C_VISIBILITY_PRESET hidden)

# The API on top of the HTTP server.
add_library(gantry_scheduler_api STATIC
    ${CMAKE_CURRENT_SOURCE_DIR}/api.c
    ${CMAKE_CURRENT_SOURCE_DIR}/api_read.c
    ${CMAKE_CURRENT_SOURCE_DIR}/api_write.c
    ${CMAKE_CURRENT_SOURCE_DIR}/metrics.c
    ${CMAKE_CURRENT_SOURCE_DIR}/join.c
    ${CMAKE_CURRENT_SOURCE_DIR}/agents.c)
target_link_libraries(gantry_scheduler_api PUBLIC gantry_scheduler)
if(GANTRY_WITH_MIMALLOC)
    # Every malloc of the process (SQLite, libraft, jansson, protobuf-c, ours) then goes to
    # mimalloc: the leader's loop spends a sixth of its time allocating and freeing.
    target_include_directories(gantry_scheduler_api PUBLIC ${MIMALLOC_INCLUDE_DIR})
    target_link_libraries(gantry_scheduler_api PUBLIC ${MIMALLOC_LIBRARY})
    target_compile_definitions(gantry_scheduler_api PUBLIC GANTRY_WITH_MIMALLOC=1)
endif()
set_target_properties(gantry_scheduler_api PROPERTIES C_VISIBILITY_PRESET hidden)

if(TARGET gantry_http)
    target_link_libraries(gantry_scheduler_api PUBLIC gantry_http)
    add_executable(gantry-scheduler ${CMAKE_CURRENT_SOURCE_DIR}/main.c
                                    ${CMAKE_CURRENT_SOURCE_DIR}/aio.c)
    target_link_libraries(gantry-scheduler PRIVATE gantry_scheduler_api)
endif()
