#include "cli_run.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <vector>

#include <gtest/gtest.h>

#include "shared_data.h"

namespace kvpack::testing {
namespace {

// KVPACK_BIN (set by ctest), else the kvpack beside this test binary's folder.
std::string binary() {
  if (std::getenv("KVPACK_BIN") != nullptr) return kvpack_binary();
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const auto guess = self.parent_path().parent_path() / "kvpack";
  return !ec && std::filesystem::exists(guess) ? guess.string() : kvpack_binary();
}

}  // namespace

std::string python3() {
  return std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

CliResult run_kvpack(const std::string& args, const std::string& shell_prefix) {
  CliResult r;
  const auto err_path =
      std::filesystem::temp_directory_path() / ("kvpack-cli-" + std::to_string(getpid()) + ".err");
  // Appended piecewise: g++ 12 warns falsely (-Wrestrict) on "literal" + std::string chains.
  std::string command = shell_prefix;
  command += " '";
  command += binary();
  command += "' ";
  command += args;
  command += " 2>'";
  command += err_path.string();
  command += "'";
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, got);
  const int status = pclose(p);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream f(err_path);
  r.err.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  std::filesystem::remove(err_path);
  return r;
}

CliResult expect_one_line_error(const std::string& args, const std::string& part, int status,
                                const std::string& shell_prefix) {
  const CliResult r = run_kvpack(args, shell_prefix);
  EXPECT_EQ(r.status, status) << args << "\n" << r.err;
  EXPECT_EQ(r.out, "") << args;
  EXPECT_EQ(r.err.rfind("kvpack: error: ", 0), 0u) << args << "\n" << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << "\n" << r.err;
  EXPECT_NE(r.err.find(part), std::string::npos) << args << "\n" << r.err;
  return r;
}

std::string temp_path(const std::string& name) {
  // Removed when the test process exits, so per-process names do not pile up in the temp folder.
  struct Cleanup {
    std::vector<std::string> paths;
    ~Cleanup() {
      std::error_code ignored;
      for (const auto& p : paths) std::filesystem::remove_all(p, ignored);
    }
  };
  static Cleanup cleanup;
  std::string path = ::testing::TempDir() + "/kvpack-" + std::to_string(getpid()) + "-" + name;
  cleanup.paths.push_back(path);
  return path;
}

}  // namespace kvpack::testing
