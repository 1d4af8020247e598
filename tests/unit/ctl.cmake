# Unit tests of the gantry CLI: argument parsing, output formatting and error sentences,
# all without a server.
gantry_unit_test(test_ctl_args SOURCES test_ctl_args.c LIBS gantry_ctl)
gantry_unit_test(test_ctl_output SOURCES test_ctl_output.c LIBS gantry_ctl)
gantry_unit_test(test_ctl_errors SOURCES test_ctl_errors.c LIBS gantry_ctl)
