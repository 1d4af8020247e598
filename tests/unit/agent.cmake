gantry_unit_test(test_agent_image SOURCES test_agent_image.c LIBS gantry_agent)
gantry_unit_test(test_agent_session SOURCES test_agent_session.c LIBS gantry_agent)
gantry_unit_test(test_agent_state SOURCES test_agent_state.c LIBS gantry_agent)
gantry_unit_test(test_agent_network SOURCES test_agent_network.c LIBS gantry_agent)
# Replica networks through CNI: the plugin protocol with plugins the test writes, and (as
# root) Debian's reference plugins in a network namespace of the test's own.
gantry_unit_test(test_agent_cni SOURCES test_agent_cni.c LIBS gantry_agent TIMEOUT 120)
# WireGuard through wireguard-go: keys, and (as root) a tunnel between two namespaces.
gantry_unit_test(test_agent_wireguard SOURCES test_agent_wireguard.c LIBS gantry_agent TIMEOUT 120)
gantry_unit_test(test_agent_bundle SOURCES test_agent_bundle.c LIBS gantry_agent)
gantry_unit_test(test_agent_health SOURCES test_agent_health.c LIBS gantry_agent)
gantry_unit_test(test_agent_metric SOURCES test_agent_metric.c LIBS gantry_agent)
# The OCI image store: blobs, images, collection, and the layer unpacker with hostile
# archives (as root also device nodes, and whiteouts under a real overlay mount).
gantry_unit_test(test_oci_store SOURCES test_oci_store.c LIBS gantry_agent TIMEOUT 120)
gantry_unit_test(test_oci_layer SOURCES test_oci_layer.c LIBS gantry_agent Threads::Threads
                 TIMEOUT 180)
