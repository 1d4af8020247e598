# Unit tests of the workload spec model: the JSON codec and validation, the protobuf
# conversion, and the YAML reader.
gantry_unit_test(test_spec SOURCES test_spec.c LIBS gantry_common)
gantry_unit_test(test_spec_pb SOURCES test_spec_pb.c LIBS gantry_proto)
gantry_unit_test(test_spec_yaml SOURCES test_spec_yaml.c LIBS gantry_common)
