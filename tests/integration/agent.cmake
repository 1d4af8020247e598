add_executable(fake_leader ${CMAKE_CURRENT_SOURCE_DIR}/agent/fake_leader.c)
set_target_properties(fake_leader PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                      ${PROJECT_BINARY_DIR}/tests/integration/agent)
target_link_libraries(fake_leader PRIVATE gantry_proto gantry_common PkgConfig::UV
                      PkgConfig::JANSSON)
gantry_integration_test(integration_agent_supervision
                        SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_agent_supervision.sh TIMEOUT 180)
# Images from a registry (docker-registry, umoci and skopeo from Debian): layers, whiteouts,
# the image config under the spec, shared layers, ImagePullBackOff.
gantry_integration_test(test_agent_images
                        SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_agent_images.sh TIMEOUT 300)
