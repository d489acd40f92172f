// The HTTP layer of `kvpack serve` (src/serve), on cpp-httplib: OpenAI's /v1/completions,
// /v1/chat/completions (JSON or server-sent events) and /v1/models, llama.cpp's /health,
// /tokenize and /detokenize, and Prometheus' /metrics. It binds first and serves /health (503,
// "loading") while the model loads; attach() makes it ready. Handlers parse and check the body,
// tokenize and submit to the Engine; a client that goes away cancels its job.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "serve/chat_prompt.h"
#include "serve/engine.h"

namespace httplib {
class Server;
}

namespace kvpack::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (bind() returns it)
  // Connections served at once: each running or queued request holds one (streaming or
  // waiting), so `kvpack serve` sizes it as --parallel + --queue + 8.
  int http_threads = 80;
  size_t max_body_bytes = 8 << 20;  // larger bodies get 413
  int io_timeout_s = 30;            // socket read and write timeouts
};

class HttpServer {
 public:
  explicit HttpServer(ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket and returns its port. Throws Error when it cannot.
  int bind();
  // Serves on a thread of its own until stop().
  void start();
  // The engine is ready: generation endpoints and /health open. `model_id` names the model in
  // responses and /v1/models.
  void attach(Engine& engine, ChatPrompt chat, std::string model_id);
  // Stops accepting and closes the listening socket; handlers in flight finish.
  void stop();

 private:
  void routes();
  void info_routes();
  void generation_routes();
  void token_routes();

  ServerOptions options_;
  std::unique_ptr<httplib::Server> server_;
  std::atomic<Engine*> engine_{nullptr};
  ChatPrompt chat_;
  std::string model_id_;
  std::atomic<uint64_t> next_id_{1};
  std::thread thread_;
  std::atomic<bool> listen_returned_{false};
  int port_ = 0;
};

}  // namespace kvpack::serve
