# The control plane's HTTP/1.1 server and forwarder (scheduler/http*.c).
gantry_unit_test(test_http SOURCES test_http.c LIBS gantry_http TIMEOUT 600)
gantry_unit_test(test_http_json SOURCES test_http_json.c LIBS gantry_http)
