# The control plane's HTTP side: the HTTP/1.1 server and forwarder (scheduler/http/), the
# API's request bodies and route table (scheduler/api/), and the views of the state the
# API serves (scheduler/state/query_api.c).
gantry_unit_test(test_http SOURCES test_http.c LIBS gantry_http TIMEOUT 600)
gantry_unit_test(test_json_body SOURCES test_json_body.c LIBS gantry_api)
gantry_unit_test(test_api_routes SOURCES test_api_routes.c LIBS gantry_api)
gantry_unit_test(test_api_views SOURCES test_api_views.c LIBS gantry_state)
