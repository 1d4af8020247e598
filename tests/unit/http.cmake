# The control plane's HTTP/1.1 server and forwarder (scheduler/http/).
gantry_unit_test(test_http SOURCES test_http.c LIBS gantry_http TIMEOUT 600)
gantry_unit_test(test_json_body SOURCES test_json_body.c LIBS gantry_api)
