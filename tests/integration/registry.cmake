# Images from registries: the agent's registry client against Debian's docker-registry.
add_executable(registry_fetch ${CMAKE_CURRENT_SOURCE_DIR}/registry_fetch.c)
target_link_libraries(registry_fetch PRIVATE gantry_agent PkgConfig::JANSSON)
gantry_integration_test(integration_registry SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_registry.sh
                        TIMEOUT 240)
# The leader pins image tags to digests at apply (a scheduler, an agent and a registry).
gantry_integration_test(integration_image_pinning
                        SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_image_pinning.sh TIMEOUT 660)
# Layers between the nodes of a cloud: a scheduler and four agents with layer servers on
# one loopback, the registry giving a three-layer image about once for three replicas, pull
# progress in the reason, and a node that joins after the registry stopped getting the
# image from its peers while refusing a peer's damaged layer.
gantry_integration_test(integration_image_peers
                        SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_image_peers.sh TIMEOUT 600
                        LOCK multi_host)
