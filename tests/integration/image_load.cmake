# gantry-agent image load (OCI layouts and docker save archives made with umoci and skopeo),
# then image pull of the loaded names with their registry unreachable.
gantry_integration_test(integration_image_load SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_image_load.sh
                        TIMEOUT 120)
