# Finds every library Gantry links, through pkg-config, and stops with a message that
# names the missing package and the apt-get line that installs it.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
    message(FATAL_ERROR "pkg-config is missing: apt-get install -y pkg-config (or run deploy/install-deps)")
endif()

set(GANTRY_DEPENDENCIES
    "UV|libuv|libuv1-dev"
    "RAFT|raft|libraft-dev"
    "SQLITE3|sqlite3|libsqlite3-dev"
    "PROTOBUFC|libprotobuf-c|libprotobuf-c-dev"
    "JANSSON|jansson|libjansson-dev"
    "CURL|libcurl|libcurl4-openssl-dev"
    "LIBCRYPTO|libcrypto|libssl-dev"
    "YAML|yaml-0.1|libyaml-dev"
    "SECCOMP|libseccomp|libseccomp-dev"
    "CAP|libcap|libcap-dev"
    "CMOCKA|cmocka|libcmocka-dev")

foreach(dep IN LISTS GANTRY_DEPENDENCIES)
    string(REPLACE "|" ";" parts "${dep}")
    list(GET parts 0 var)
    list(GET parts 1 module)
    list(GET parts 2 apt)
    pkg_check_modules(${var} QUIET IMPORTED_TARGET ${module})
    if(NOT ${var}_FOUND)
        message(FATAL_ERROR "Missing dependency '${module}' (pkg-config). Install it with:\n"
                            "    apt-get install -y ${apt}\n"
                            "or install everything with deploy/install-deps")
    endif()
endforeach()

# libraft: Gantry carries workarounds for the sharp edges of 0.15, Debian 12's version
# (scheduler/raft/libraft_compat.h lists them). Another version may have fixed some and
# broken others, so it is refused until each has been checked against it; then configure
# with -DGANTRY_LIBRAFT_CHECKED=<that version>.
set(GANTRY_LIBRAFT_CHECKED "" CACHE STRING
    "A libraft version other than 0.15 whose behaviour was checked against libraft_compat.h")
if(NOT RAFT_VERSION MATCHES "^0\\.15\\." AND NOT RAFT_VERSION STREQUAL GANTRY_LIBRAFT_CHECKED)
    message(FATAL_ERROR "libraft ${RAFT_VERSION} found; Gantry is built and tested on 0.15, "
                        "with the workarounds listed in scheduler/raft/libraft_compat.h. Check "
                        "each against ${RAFT_VERSION}, then configure with "
                        "-DGANTRY_LIBRAFT_CHECKED=${RAFT_VERSION}")
endif()

find_package(Threads REQUIRED)

# http-parser ships no pkg-config file on Debian 12.
find_path(HTTP_PARSER_INCLUDE_DIR http_parser.h)
find_library(HTTP_PARSER_LIBRARY http_parser)
if(NOT HTTP_PARSER_INCLUDE_DIR OR NOT HTTP_PARSER_LIBRARY)
    message(FATAL_ERROR "Missing dependency 'http_parser'. Install it with:\n"
                        "    apt-get install -y libhttp-parser-dev\n"
                        "or install everything with deploy/install-deps")
endif()
add_library(http_parser::http_parser UNKNOWN IMPORTED)
set_target_properties(http_parser::http_parser PROPERTIES
    IMPORTED_LOCATION "${HTTP_PARSER_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${HTTP_PARSER_INCLUDE_DIR}")

find_program(PROTOC_C protoc-c)
if(NOT PROTOC_C)
    message(FATAL_ERROR "Missing program 'protoc-c'. Install it with:\n"
                        "    apt-get install -y protobuf-c-compiler\n"
                        "or install everything with deploy/install-deps")
endif()

# mimalloc for the control-plane server (GANTRY_MIMALLOC): it replaces malloc for the whole
# process. Not with the sanitizers, which bring their own allocator.
set(GANTRY_WITH_MIMALLOC OFF)
if(GANTRY_MIMALLOC AND NOT GANTRY_SANITIZE AND NOT GANTRY_FUZZ)
    find_path(MIMALLOC_INCLUDE_DIR mimalloc.h)
    find_library(MIMALLOC_LIBRARY NAMES mimalloc)
    if(NOT MIMALLOC_INCLUDE_DIR OR NOT MIMALLOC_LIBRARY)
        message(FATAL_ERROR "Missing dependency 'mimalloc'. Install it with:\n"
                            "    apt-get install -y libmimalloc-dev\n"
                            "or install everything with deploy/install-deps "
                            "(or configure with -DGANTRY_MIMALLOC=OFF)")
    endif()
    set(GANTRY_WITH_MIMALLOC ON)
endif()
