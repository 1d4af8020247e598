# The runtime's config.json parser.
gantry_fuzz_target(fuzz_rt_config SOURCES fuzz_rt_config.c LIBS gantry_runtime)
