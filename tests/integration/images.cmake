# Images across the cluster (docs/images.md): one server and two agents with a registry in
# a network namespace; gantry image pull, get images, image rm, the in-use refusal and
# ImageLocality. Skipped without docker-registry, umoci and skopeo.
gantry_integration_test(test_images_cli SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_images_cli.sh
                        TIMEOUT 420)
