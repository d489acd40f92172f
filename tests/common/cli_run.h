// Runs the built kvpack binary (CLI tests): exit status, stdout and stderr kept apart so a test
// can check that an error is one line on stderr and nothing half-printed on stdout.
#pragma once

#include <string>

namespace kvpack::testing {

struct CliResult {
  int status = -1;  // exit status; -1 when the command could not run or was killed
  std::string out;
  std::string err;
};

// Runs `<kvpack> <args>` through the shell; args are passed as written (quote them), and may
// redirect stdin or stdout. `shell_prefix` runs first in the same shell (e.g. "ulimit -f 64;"
// or "timeout 20"), so it can bound or wrap the command.
CliResult run_kvpack(const std::string& args, const std::string& shell_prefix = "");

// Runs `<kvpack> <args>` and expects bad input's contract (docs/cli.md): exit status `status`
// (1 for bad input, 2 for a flag the command line cannot parse), nothing on stdout, and one
// line on stderr starting "kvpack: error: " that contains `part`. Returns the result.
CliResult expect_one_line_error(const std::string& args, const std::string& part, int status = 1,
                                const std::string& shell_prefix = "");

// The Python tests call: Debian's /usr/bin/python3 (where apt's python3-* modules install), else
// whatever python3 the PATH has.
std::string python3();

// A path in the test temp folder for `name`, unique to this process: ctest runs each test in its
// own process, two at a time, so a fixed name shared by two tests is a race (a prompt file
// rewritten by another test between write and read once made a serve test compare against the
// wrong prompt's text; two output-file tests once removed each other's folder). Whatever is at
// the path when the process exits, file or folder, is removed.
std::string temp_path(const std::string& name);

}  // namespace kvpack::testing
