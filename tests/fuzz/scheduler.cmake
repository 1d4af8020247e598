# Control-plane fuzz targets: Raft entry decoding, command execution and snapshot images.
gantry_fuzz_target(fuzz_sch_command SOURCES fuzz_sch_command.c LIBS gantry_state)
