gantry_integration_test(integration_fleet SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_fleet.sh
                        TIMEOUT 600 LOCK multi_host)
gantry_integration_test(integration_autoscale SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_autoscale.sh
                        TIMEOUT 900 LOCK multi_host)
gantry_integration_test(integration_clouds SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_clouds.sh
                        TIMEOUT 900 LOCK multi_host)
gantry_integration_test(test_fleet_partition
                        SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_fleet_partition.sh TIMEOUT 900
                        LOCK multi_host)
gantry_integration_test(test_agent_storage
                        SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_agent_storage.sh TIMEOUT 900
                        LOCK multi_host)
gantry_integration_test(test_fleet_clock
                        SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_fleet_clock.sh TIMEOUT 900
                        LOCK multi_host)
# Routes between the nodes of a cloud: replicas on four hosts reach each other by address.
gantry_integration_test(integration_network_routes
                        SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_network_routes.sh TIMEOUT 900
                        LOCK multi_host)
# Published ports through the CNI portmap plugin, and host-port conflicts at placement.
gantry_integration_test(integration_network_ports
                        SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_network_ports.sh TIMEOUT 900
                        LOCK multi_host)
# Two clouds joined by a router: replicas reach each other through WireGuard tunnels, and
# nothing crosses between the clouds in the clear.
gantry_integration_test(integration_network_clouds
                        SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_network_clouds.sh TIMEOUT 900
                        LOCK multi_host)
