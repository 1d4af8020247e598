# Unit tests of image references and the registry client's parsers (no network).
gantry_unit_test(test_image_ref SOURCES test_image_ref.c LIBS gantry_common)
gantry_unit_test(test_registry_auth SOURCES test_registry_auth.c LIBS gantry_agent)
gantry_unit_test(test_registry SOURCES test_registry.c LIBS gantry_agent)
# gantry-agent image load: OCI layouts (directory, tar, tar.gz) and docker save archives
# built here, hostile ones refused, and a pull that uses a loaded image when the registry
# cannot be reached.
gantry_unit_test(test_image_load SOURCES test_image_load.c LIBS gantry_agent TIMEOUT 120)
# Layers between the nodes of a cloud: rendezvous ranking, download slots and blobs in
# flight, the layer server and its client on loopback (with a stand-in registry).
gantry_unit_test(test_image_peers SOURCES test_image_peers.c LIBS gantry_agent TIMEOUT 120)
