#include "serve/http_server.h"

#include <httplib.h>

#include <ctime>
#include <random>

#include "base/error.h"
#include "serve/openai_json.h"

namespace kvpack::serve {

using nlohmann::json;

namespace {

constexpr auto kPoll = std::chrono::milliseconds(50);

void send_json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

void send_error(httplib::Response& res, const RequestError& e) {
  send_json(res, e.status(), error_body(e));
}

// The prompt's ids as the engine runs them. Text is tokenized as `kvpack run` does it (BOS
// where the vocabulary adds it, special-token text parsed), so the same prompt gives the same
// tokens; "" is BOS alone.
std::vector<int32_t> prompt_ids(const Engine& engine, const ChatPrompt& chat,
                                const CompletionRequest& r) {
  if (r.prompt_ids) return *r.prompt_ids;
  const model::Tokenizer* tok = engine.model().tokenizer();
  if (tok == nullptr)
    bad_field("prompt", "the model has no tokenizer: give the prompt as token ids");
  if (r.endpoint == Endpoint::kChat) return chat.tokens(*tok, r.messages);
  std::vector<int32_t> ids = tok->encode(r.prompt, /*add_special=*/true, /*parse_special=*/true);
  if (ids.empty() && tok->bos() != model::kNoToken) ids.push_back(tok->bos());
  return ids;
}

GenerationJob make_job(const Engine& engine, const ChatPrompt& chat, const CompletionRequest& r) {
  GenerationJob g;
  int pool = 0;
  try {
    pool = engine.pool_of(r.kv);
  } catch (const Error& e) {
    bad_field("kv", e.what());
  }
  if (pool < 0) {
    std::string served;
    for (const auto& p : engine.config().policies)
      served += (served.empty() ? "" : ", ") + p.to_string();
    bad_field("kv", fmt::format("no pool serves the K/V policy '{}' (served: {})", r.kv, served));
  }
  g.pool = pool;
  g.prompt = prompt_ids(engine, chat, r);
  g.cache_prompt = r.cache_prompt;
  model::GenerationConfig& c = g.generation;
  c.sampling = r.sampling;
  c.sampling.seed = r.seed ? *r.seed : std::random_device{}();
  c.max_tokens = r.max_tokens;
  c.stop = r.stop;
  c.ignore_eog = r.ignore_eos;
  return g;
}

// The error a finished job reports instead of a completion, or "" when it completed.
std::string job_failure(const JobOutcome& o) {
  if (!o.error.empty()) return error_body(500, "server_error", o.error);
  if (o.aborted)
    return error_body(503, "unavailable_error", "the request was aborted (server shutdown)");
  return {};
}

// Streams the job as server-sent events; a write that fails or a closed socket cancels it.
httplib::ContentProviderWithoutLength stream_provider(std::shared_ptr<Job> job, ResponseMeta meta,
                                                      bool include_usage) {
  return [job, meta, include_usage](size_t, httplib::DataSink& sink) {
    const auto gone = [&] {
      job->cancel();
      return false;
    };
    if (meta.endpoint == Endpoint::kChat) {
      const std::string role = stream_text_event(meta, "", /*first=*/true);
      if (!sink.write(role.data(), role.size())) return gone();
    }
    std::vector<std::string> pieces;
    for (;;) {
      const bool done = job->wait(pieces, kPoll);
      if (!sink.is_writable()) return gone();
      for (const std::string& p : pieces) {
        const std::string ev = stream_text_event(meta, p, /*first=*/false);
        if (!sink.write(ev.data(), ev.size())) return gone();
      }
      pieces.clear();
      if (!done) continue;
      const std::string failure = job_failure(job->outcome());
      const std::string tail = failure.empty()
                                   ? stream_final_events(meta, job->outcome(), include_usage)
                                   : "data: " + failure + "\n\ndata: [DONE]\n\n";
      if (!sink.write(tail.data(), tail.size())) return gone();
      sink.done();
      return true;
    }
  };
}

// Waits for the whole completion while watching the socket, then writes one JSON body.
httplib::ContentProviderWithoutLength body_provider(std::shared_ptr<Job> job, ResponseMeta meta) {
  return [job, meta](size_t, httplib::DataSink& sink) {
    std::vector<std::string> pieces;
    while (!job->wait(pieces, kPoll)) {
      if (!sink.is_writable()) {
        job->cancel();
        return false;
      }
    }
    std::string text;
    for (const std::string& p : pieces) text += p;
    std::string body = job_failure(job->outcome());
    if (body.empty()) body = completion_body(meta, text, job->outcome());
    if (!sink.write(body.data(), body.size())) return false;
    sink.done();
    return true;
  };
}

}  // namespace

HttpServer::HttpServer(ServerOptions options)
    : options_(std::move(options)), server_(std::make_unique<httplib::Server>()) {
  routes();
}

HttpServer::~HttpServer() {
  stop();
}

int HttpServer::bind() {
  server_->set_payload_max_length(options_.max_body_bytes);
  server_->set_read_timeout(options_.io_timeout_s, 0);
  server_->set_write_timeout(options_.io_timeout_s, 0);
  server_->set_keep_alive_timeout(5);
  server_->set_tcp_nodelay(true);  // tokens go out as they come, not after a delayed ACK
  port_ = options_.port == 0
              ? server_->bind_to_any_port(options_.host)
              : (server_->bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (port_ <= 0) fail("serve: cannot listen on {}:{}", options_.host, options_.port);
  return port_;
}

void HttpServer::start() {
  thread_ = std::thread([this] {
    server_->listen_after_bind();
    listen_returned_ = true;
  });
  // stop() only stops a server that runs: wait until it does (or listening failed), so a stop()
  // right after start() (a model that fails to load) cannot miss it and leave the thread.
  while (!server_->is_running() && !listen_returned_)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void HttpServer::attach(Engine& engine, ChatPrompt chat, std::string model_id) {
  chat_ = std::move(chat);
  model_id_ = std::move(model_id);
  engine_ = &engine;
}

void HttpServer::stop() {
  if (server_->is_running()) server_->stop();
  if (thread_.joinable()) thread_.join();
}

void HttpServer::routes() {
  httplib::Server& s = *server_;
  const size_t threads = static_cast<size_t>(std::max(options_.http_threads, 4));
  s.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    const bool missing = res.status == 404;
    send_json(res, res.status,
              error_body(res.status, missing ? "not_found_error" : "invalid_request_error",
                         missing ? "no such endpoint" : fmt::format("HTTP status {}", res.status)));
  });
  s.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        send_json(res, 500, error_body(500, "server_error", what));
      });

  info_routes();
  generation_routes();
  token_routes();
}

// /health, /metrics and /v1/models.
void HttpServer::info_routes() {
  httplib::Server& s = *server_;
  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const Engine* e = engine_.load();
    if (e == nullptr) return send_json(res, 503, R"({"status":"loading model"})");
    if (e->draining()) return send_json(res, 503, R"({"status":"draining"})");
    send_json(res, 200, R"({"status":"ok"})");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    Engine* e = engine_.load();
    if (e == nullptr)
      return send_json(res, 503, error_body(503, "unavailable_error", "loading model"));
    res.set_content(e->metrics().render(e->pool_gauges()), "text/plain; version=0.0.4");
  });
  s.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    const Engine* e = engine_.load();
    if (e == nullptr)
      return send_json(res, 503, error_body(503, "unavailable_error", "loading model"));
    const model::ModelSpec& hp = e->model().spec();
    json m = {{"id", model_id_},
              {"object", "model"},
              {"created", static_cast<int64_t>(std::time(nullptr))},
              {"owned_by", "kvpack"},
              {"meta",
               {{"n_ctx", e->config().context},
                {"n_ctx_train", hp.n_ctx_train},
                {"n_vocab", hp.n_vocab},
                {"n_layers", hp.n_layers()},
                {"chat_format", chat_.name()}}}};
    send_json(res, 200, dump_json({{"object", "list"}, {"data", json::array({m})}}));
  });
}

// The completion endpoints, each under /v1 and without it.
void HttpServer::generation_routes() {
  httplib::Server& s = *server_;
  for (const auto& [path, endpoint] : {std::pair{"/v1/completions", Endpoint::kCompletions},
                                       std::pair{"/completions", Endpoint::kCompletions},
                                       std::pair{"/v1/chat/completions", Endpoint::kChat},
                                       std::pair{"/chat/completions", Endpoint::kChat}}) {
    const Endpoint ep = endpoint;
    s.Post(path, [this, ep](const httplib::Request& req, httplib::Response& res) {
      Engine* e = engine_.load();
      if (e == nullptr)
        return send_json(res, 503, error_body(503, "unavailable_error", "loading model"));
      std::shared_ptr<Job> job;
      CompletionRequest r;
      try {
        r = parse_completion_request(req.body, ep);
        job = e->submit(make_job(*e, chat_, r));
      } catch (const RequestError& err) {
        return send_error(res, err);
      } catch (const Error& err) {  // e.g. text the vocabulary cannot tokenize
        return send_error(res, RequestError(400, "invalid_request_error", err.what(), "prompt"));
      }
      const ResponseMeta meta{
          ep, fmt::format("{}-{}", ep == Endpoint::kChat ? "chatcmpl" : "cmpl", next_id_++),
          static_cast<int64_t>(std::time(nullptr)), model_id_};
      const auto release = [job](bool success) {
        if (!success) job->cancel();
      };
      if (r.stream) {
        res.set_header("Cache-Control", "no-cache");
        res.set_chunked_content_provider("text/event-stream",
                                         stream_provider(job, meta, r.include_usage), release);
      } else {
        res.set_chunked_content_provider("application/json", body_provider(job, meta), release);
      }
    });
  }
}

// llama.cpp's /tokenize and /detokenize.
void HttpServer::token_routes() {
  httplib::Server& s = *server_;
  s.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    const Engine* e = engine_.load();
    if (e == nullptr)
      return send_json(res, 503, error_body(503, "unavailable_error", "loading model"));
    const model::Tokenizer* tok = e->model().tokenizer();
    try {
      const TokenizeRequest r = parse_tokenize_request(req.body);
      if (tok == nullptr) bad_field("content", "the model has no tokenizer");
      const std::vector<int32_t> ids = tok->encode(r.content, r.add_special, r.parse_special);
      json out = json::array();
      for (int32_t id : ids) {
        out.push_back(r.with_pieces ? json{{"id", id}, {"piece", tok->token_to_piece(id, true)}}
                                    : json(id));
      }
      send_json(res, 200, dump_json({{"tokens", out}}));
    } catch (const RequestError& err) {
      send_error(res, err);
    } catch (const Error& err) {
      send_error(res, RequestError(400, "invalid_request_error", err.what(), "content"));
    }
  });
  s.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    const Engine* e = engine_.load();
    if (e == nullptr)
      return send_json(res, 503, error_body(503, "unavailable_error", "loading model"));
    const model::Tokenizer* tok = e->model().tokenizer();
    try {
      const DetokenizeRequest r = parse_detokenize_request(req.body);
      if (tok == nullptr) bad_field("tokens", "the model has no tokenizer");
      for (size_t i = 0; i < r.tokens.size(); ++i) {
        if (r.tokens[i] >= tok->n_vocab()) {
          bad_field(fmt::format("tokens[{}]", i),
                    fmt::format("token id {} is outside the vocabulary of {} tokens", r.tokens[i],
                                tok->n_vocab()));
        }
      }
      send_json(res, 200, dump_json({{"content", tok->decode(r.tokens)}}));
    } catch (const RequestError& err) {
      send_error(res, err);
    }
  });
}

}  // namespace kvpack::serve
