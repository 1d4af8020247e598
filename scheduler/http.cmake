# gantry_http: the control plane's HTTP/1.1 server and request forwarder (docs/http.md).
file(GLOB GANTRY_HTTP_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/http*.c)
add_library(gantry_http STATIC ${GANTRY_HTTP_SOURCES})
target_link_libraries(gantry_http PUBLIC PkgConfig::UV PkgConfig::JANSSON
                      http_parser::http_parser gantry_common)
set_target_properties(gantry_http PROPERTIES C_VISIBILITY_PRESET hidden)
