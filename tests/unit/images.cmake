# Unit tests of image references and the registry client's parsers (no network).
gantry_unit_test(test_image_ref SOURCES test_image_ref.c LIBS gantry_common)
gantry_unit_test(test_registry_auth SOURCES test_registry_auth.c LIBS gantry_agent)
gantry_unit_test(test_registry SOURCES test_registry.c LIBS gantry_agent)
