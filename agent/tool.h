/* Running a helper program (tar, cp) and turning its failure into an error that
 * carries the program's own words. */
#ifndef GANTRY_AGENT_TOOL_H
#define GANTRY_AGENT_TOOL_H

#include "common/error.h"

/* Runs argv (argv[0] looked up in PATH) with stdin and stdout on /dev/null and waits for
 * it. A non-zero exit is GY_EIO with the command line, the status and the end of its
 * stderr: "tar -xpf x.tar -C dir: exit 2: This does not look like a tar archive". */
int agent_tool_run(const char *const argv[], struct gy_error *err);

#endif
