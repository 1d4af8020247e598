# The HTTP protocol engine of the control plane (scheduler/http/http_conn.c), fed without sockets.
gantry_fuzz_target(fuzz_http SOURCES fuzz_http.c LIBS gantry_http)
