// A `kvpack serve` child process for the integration tests: started on a free loopback port,
// ready once its stderr says so, stopped by a signal with its exit status checked.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace kvpack::testing {

class ServerProcess {
 public:
  // Starts `kvpack serve -m <probe model> --port 0 -t 2 <args>` and waits (up to 60 s) for its
  // "kvpack: ready" line; on failure the test fails and port() is 0.
  explicit ServerProcess(const std::string& args);
  // The same with another model.
  ServerProcess(const std::string& args, const std::filesystem::path& model);
  ~ServerProcess();  // SIGKILL if it still runs
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Sends `sig` and waits up to timeout_s for the exit; returns the exit status, or -1 when it
  // was killed by a signal or did not exit in time (then it is killed).
  int stop(int sig, double timeout_s);
  void signal(int sig) const;
  // Everything the server wrote to stderr so far.
  std::string log() const;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_path_;
};

// Runs a shell command, returning its stdout (stderr is passed through).
std::string shell_output(const std::string& command, int* status = nullptr);

}  // namespace kvpack::testing
