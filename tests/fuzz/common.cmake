# Fuzz targets of the shared library: the YAML spec reader, with JSON and protobuf round
# trips of every spec it accepts.
gantry_fuzz_target(fuzz_spec_yaml SOURCES fuzz_spec_yaml.c LIBS gantry_proto)
