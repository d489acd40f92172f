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

// Runs `<kvpack> <args>` through the shell; args are passed as written (quote them).
CliResult run_kvpack(const std::string& args);

// Runs `<kvpack> <args>` and expects bad input's contract: exit status 1, nothing on stdout, and
// one line on stderr starting "kvpack: error: " that contains `part`.
void expect_one_line_error(const std::string& args, const std::string& part);

}  // namespace kvpack::testing
