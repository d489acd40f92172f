// `kvpack serve` end to end on the probe model: answers token for token equal to `kvpack run`
// with the same seed (plain HTTP, curl's SSE stream and the official OpenAI client), usage and
// cached tokens, errors, the queue bound, client disconnects, a full pool, metrics and SIGTERM.
#include <gtest/gtest.h>
#include <httplib.h>

#include <fmt/format.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli_run.h"
#include "mutate.h"
#include "probe_model.h"
#include "server_process.h"

namespace kvpack::testing {
namespace {

using nlohmann::json;

struct Reply {
  int status = -1;  // -1: no response
  std::string body;
  json j;
};

Reply post(int port, const std::string& path, const std::string& body) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  Reply r;
  if (auto res = c.Post(path.c_str(), body, "application/json")) {
    r.status = res->status;
    r.body = res->body;
    r.j = json::parse(r.body, nullptr, false);
  }
  return r;
}

Reply get(int port, const std::string& path) {
  httplib::Client c("127.0.0.1", port);
  Reply r;
  if (auto res = c.Get(path.c_str())) {
    r.status = res->status;
    r.body = res->body;
    r.j = json::parse(r.body, nullptr, false);
  }
  return r;
}

// `kvpack run`'s continuation of `prompt` (given through a file, so any text survives).
std::string run_text(const std::string& prompt, const std::string& args) {
  const std::string path = kvpack::testing::temp_path("serve_prompt.txt");
  std::ofstream(path, std::ios::binary) << prompt;
  const CliResult r = run_kvpack("run -m '" + probe_model_path().string() + "' -f '" + path +
                                 "' -t 2 --no-display-prompt " + args);
  EXPECT_EQ(r.status, 0) << r.err;
  return r.out;
}

// The text of an SSE stream of completion chunks, as curl received it.
std::string sse_text(const std::string& stream, bool chat, int* events = nullptr) {
  std::string text;
  int n = 0;
  std::istringstream in(stream);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("data: ", 0) != 0 || line == "data: [DONE]") continue;
    const json j = json::parse(line.substr(6));
    ++n;
    for (const json& c : j["choices"]) {
      text += chat ? c["delta"].value("content", "") : c["text"].get<std::string>();
    }
  }
  if (events != nullptr) *events = n;
  return text;
}

double metric(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

const char* kPrompt = "Once upon a time";

TEST(Serve, CompletionsMatchRunTokenForToken) {
  ServerProcess server("--parallel 2");
  ASSERT_GT(server.port(), 0);
  const std::string path = kvpack::testing::temp_path("serve_body.json");
  for (const auto& [fields, flags] :
       {std::pair{R"("seed": 3)", "--seed 3"},
        std::pair{R"("seed": 11, "temperature": 0)", "--seed 11 --temp 0"},
        std::pair{R"("seed": 5, "top_k": 20, "top_p": 0.9, "min_p": 0.02, "repeat_penalty": 1.1)",
                  "--seed 5 --top-k 20 --top-p 0.9 --min-p 0.02 --repeat-penalty 1.1"}}) {
    const std::string body =
        fmt::format(R"({{"prompt": "{}", "max_tokens": 48, {}}})", kPrompt, fields);
    const std::string expected = run_text(kPrompt, std::string("-n 48 ") + flags);
    const Reply r = post(server.port(), "/v1/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.j["choices"][0]["text"], expected) << body;
    EXPECT_EQ(r.j["usage"]["completion_tokens"], 48);
    EXPECT_EQ(r.j["choices"][0]["finish_reason"], "length");
    EXPECT_TRUE(r.j["timings"].contains("predicted_per_second"));
    // The same request streamed through curl.
    std::ofstream(path) << body.substr(0, body.size() - 1) << R"(, "stream": true})";
    int status = 0;
    const std::string stream =
        shell_output("curl -sN --max-time 60 " + server.url() +
                         "/v1/completions -H 'Content-Type: application/json' -d @" + path,
                     &status);
    ASSERT_EQ(status, 0);
    int events = 0;
    EXPECT_EQ(sse_text(stream, false, &events), expected) << stream;
    EXPECT_GE(events, 10);
    EXPECT_NE(stream.find("data: [DONE]\n\n"), std::string::npos);
  }
  EXPECT_EQ(server.stop(SIGTERM, 30), 0) << server.log();
}

// Two pools: a request's "kv" picks one, and its answer is `kvpack run --kv` with that policy.
TEST(Serve, RequestPicksItsPool) {
  ServerProcess server("--parallel 2 --kv k=f16,v=f16 --kv k=q4,v=q8");
  ASSERT_GT(server.port(), 0);
  for (const char* kv : {"k=q4,v=q8", "k=f16,v=f16"}) {
    const std::string expected = run_text(kPrompt, std::string("-n 32 --seed 8 --kv ") + kv);
    const json body = {{"prompt", kPrompt}, {"max_tokens", 32}, {"seed", 8}, {"kv", kv}};
    const Reply r = post(server.port(), "/v1/completions", body.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.j["choices"][0]["text"], expected) << kv;
  }
  const std::string m = get(server.port(), "/metrics").body;
  EXPECT_GT(metric(m, "kvpack:kv_cache_reserved_bytes{kv=\"k=q4,v=q8\"}"), 0);
  EXPECT_LT(metric(m, "kvpack:kv_cache_reserved_bytes{kv=\"k=q4,v=q8\"}"),
            metric(m, "kvpack:kv_cache_reserved_bytes{kv=\"k=f16,v=f16\"}"));
}

TEST(Serve, ChatAndTheOpenAIClientMatchRun) {
  ServerProcess server("--parallel 2");
  ASSERT_GT(server.port(), 0);
  // The probe model has no chat template: the plain layout.
  const std::string chat_prompt = "Be brief.\n\nUser: Tell me a story.\nAssistant:";
  const std::string chat_expected = run_text(chat_prompt, "-n 24 --seed 9");
  const std::string completion_expected = run_text(kPrompt, "-n 24 --seed 4");
  const json messages = json::array({{{"role", "system"}, {"content", "Be brief."}},
                                     {{"role", "user"}, {"content", "Tell me a story."}}});
  json requests = json::array();
  for (bool stream : {false, true}) {
    requests.push_back(
        {{"kind", "chat"},
         {"stream", stream},
         {"params",
          {{"model", "probe"}, {"messages", messages}, {"max_tokens", 24}, {"seed", 9}}}});
    requests.push_back(
        {{"kind", "completion"},
         {"stream", stream},
         {"params", {{"model", "probe"}, {"prompt", kPrompt}, {"max_tokens", 24}, {"seed", 4}}}});
  }
  const std::string script =
      std::string(KVPACK_SOURCE_DIR) + "/tests/serve/client/openai_check.mjs";
  ASSERT_TRUE(std::filesystem::exists(std::string(KVPACK_SOURCE_DIR) +
                                      "/tests/serve/client/node_modules/openai"))
      << "the openai npm package is missing: run scripts/install-deps.sh";
  const std::string args_path = kvpack::testing::temp_path("serve_openai.json");
  std::ofstream(args_path) << requests.dump();
  int status = 0;
  const std::string out = shell_output(
      "node '" + script + "' " + server.url() + "/v1 \"$(cat '" + args_path + "')\"", &status);
  ASSERT_EQ(status, 0) << out;
  const json results = json::parse(out);
  ASSERT_EQ(results.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    const bool chat = i % 2 == 0;
    EXPECT_EQ(results[i]["text"], chat ? chat_expected : completion_expected) << i;
    EXPECT_EQ(results[i]["finish_reason"], "length");
    EXPECT_EQ(results[i]["usage"]["completion_tokens"], 24);
    EXPECT_GT(results[i]["usage"]["prompt_tokens"], 5);
  }
  EXPECT_GT(results[3]["events"], 10);  // streamed: one event per token or so
  EXPECT_EQ(server.stop(SIGTERM, 30), 0);
}

TEST(Serve, CachedPromptPagesAreReportedAndReused) {
  ServerProcess server("--parallel 2");
  ASSERT_GT(server.port(), 0);
  std::string prompt;
  for (int i = 0; i < 30; ++i) prompt += "The cat sat on the mat. ";
  const json body = {{"prompt", prompt}, {"max_tokens", 8}, {"seed", 1}};
  const Reply first = post(server.port(), "/v1/completions", body.dump());
  ASSERT_EQ(first.status, 200) << first.body;
  const int64_t n = first.j["usage"]["prompt_tokens"];
  EXPECT_EQ(first.j["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  const Reply second = post(server.port(), "/v1/completions", body.dump());
  EXPECT_EQ(second.j["usage"]["prompt_tokens_details"]["cached_tokens"], (n - 1) / 32 * 32);
  EXPECT_EQ(second.j["timings"]["cache_n"], (n - 1) / 32 * 32);
  json off = body;
  off["cache_prompt"] = false;
  EXPECT_EQ(post(server.port(), "/v1/completions", off.dump())
                .j["usage"]["prompt_tokens_details"]["cached_tokens"],
            0);
  const std::string m = get(server.port(), "/metrics").body;
  EXPECT_EQ(metric(m, "kvpack:prefix_cache_hits_total"), static_cast<double>((n - 1) / 32 * 32));
  EXPECT_GT(metric(m, "kvpack:prefix_cache_queries_total"), 2.0 * (n - 1) - 1);
}

TEST(Serve, BadRequestsAreJsonErrorsNamingTheField) {
  ServerProcess server("--parallel 1 -c 64");
  ASSERT_GT(server.port(), 0);
  const auto expect = [&](const std::string& path, const std::string& body, int status,
                          const std::string& param) {
    const Reply r = post(server.port(), path, body);
    EXPECT_EQ(r.status, status) << body << " -> " << r.body;
    ASSERT_TRUE(r.j.contains("error")) << r.body;
    EXPECT_EQ(r.j["error"]["code"], status);
    EXPECT_TRUE(r.j["error"]["message"].is_string());
    if (!param.empty()) {
      EXPECT_EQ(r.j["error"]["param"], param) << r.body;
    }
  };
  expect("/v1/completions", R"({"prompt": "hi", "max_tokens": "5"})", 400, "max_tokens");
  expect("/v1/completions", R"({"prompt": "hi", "bogus": 1})", 400, "bogus");
  expect("/v1/completions", R"({"prompt": "hi", "n": 2})", 400, "n");
  expect("/v1/completions", R"({"prompt": "hi", "temperature": -1})", 400, "temperature");
  expect("/v1/completions", R"({"prompt": [1, 2, 99999]})", 400, "prompt");
  expect("/v1/completions", R"({"prompt": "hi", "kv": "k=q8,v=q8"})", 400, "kv");
  expect("/v1/completions", R"({"prompt": "hi", "kv": "k=nonsense"})", 400, "kv");
  expect("/v1/completions", R"({"max_tokens": 5})", 400, "prompt");
  expect("/v1/completions", R"({"prompt": "hi",)", 400, "");
  expect("/v1/completions", R"([1, 2])", 400, "");
  expect("/v1/chat/completions", R"({"messages": [{"role": "robot", "content": "x"}]})", 400,
         "messages[0].role");
  expect("/v1/chat/completions", R"({"messages": [{"role": "user", "content": 5}]})", 400,
         "messages[0].content");
  expect("/tokenize", R"({"content": 5})", 400, "content");
  expect("/detokenize", R"({"tokens": [5, -1]})", 400, "tokens[1]");
  std::string long_prompt;
  for (int i = 0; i < 40; ++i) long_prompt += "the cat ";
  expect("/v1/completions", json{{"prompt", long_prompt}}.dump(), 400, "prompt");
  const Reply missing = get(server.port(), "/v2/nothing");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.j["error"]["type"], "not_found_error");
  EXPECT_EQ(get(server.port(), "/health").status, 200);
  const Reply models = get(server.port(), "/v1/models");
  EXPECT_EQ(models.j["data"][0]["id"], "probe.gguf");
  const Reply tok =
      post(server.port(), "/tokenize", R"({"content": "Hello", "add_special": true})");
  ASSERT_EQ(tok.status, 200);
  const Reply detok = post(server.port(), "/detokenize", json{{"tokens", tok.j["tokens"]}}.dump());
  EXPECT_EQ(detok.j["content"], "Hello");
}

// A streamed request whose client hangs up: its pages are free right after.
TEST(Serve, DisconnectFreesThePages) {
  ServerProcess server("--parallel 2");
  ASSERT_GT(server.port(), 0);
  httplib::Client c("127.0.0.1", server.port());
  int chunks = 0;
  const json body = {
      {"prompt", kPrompt}, {"max_tokens", 3000}, {"ignore_eos", true}, {"stream", true}};
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 20; };
  c.send(req);  // returns once the receiver stops (the connection is closed)
  EXPECT_GE(chunks, 20);
  double running = -1, active = -1;
  for (int i = 0; i < 200; ++i) {
    const std::string m = get(server.port(), "/metrics").body;
    running = metric(m, "kvpack:num_requests_running");
    active = metric(m, "kvpack:kv_cache_active_bytes{kv=\"k=f16,v=f16\"}");
    if (running == 0 && active == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(running, 0);
  EXPECT_EQ(active, 0);
  EXPECT_EQ(metric(get(server.port(), "/metrics").body,
                   "kvpack:request_success_total{finished_reason=\"abort\"}"),
            1);
}

// One running request and a queue of one: the third concurrent request gets 429.
TEST(Serve, FullQueueGives429) {
  ServerProcess server("--parallel 1 --queue 1");
  ASSERT_GT(server.port(), 0);
  const json slow = {{"prompt", kPrompt}, {"max_tokens", 600}, {"ignore_eos", true}};
  std::vector<std::thread> threads;
  std::vector<int> statuses(2, 0);
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      statuses[static_cast<size_t>(i)] = post(server.port(), "/v1/completions", slow.dump()).status;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const Reply third = post(server.port(), "/v1/completions", slow.dump());
  EXPECT_EQ(third.status, 429) << third.body;
  EXPECT_EQ(third.j["error"]["type"], "rate_limit_error");
  for (auto& t : threads) t.join();
  EXPECT_EQ(statuses, (std::vector<int>{200, 200}));
}

// A pool smaller than the running requests need: the newest is preempted and recomputed, and
// every request still gets all its tokens.
TEST(Serve, FullPoolPreemptsAndRecomputes) {
  // 2048 B/token in f16: 24 pages of 32 tokens hold 768 tokens; four requests want 4 x 330.
  ServerProcess server("--parallel 4 -c 384 --kv-budget 1536KiB");
  ASSERT_GT(server.port(), 0);
  std::string prompt;
  for (int i = 0; i < 14; ++i) prompt += "The dog ran in the park. ";
  std::vector<std::thread> threads;
  std::vector<Reply> replies(4);
  for (size_t i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      const json body = {{"prompt", prompt + std::to_string(i)},
                         {"max_tokens", 200},
                         {"ignore_eos", true},
                         {"seed", i}};
      replies[i] = post(server.port(), "/v1/completions", body.dump());
    });
  }
  for (auto& t : threads) t.join();
  for (const Reply& r : replies) {
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.j["usage"]["completion_tokens"], 200) << r.body;
  }
  const std::string m = get(server.port(), "/metrics").body;
  EXPECT_GT(metric(m, "kvpack:num_preemptions_total"), 0) << m;
  EXPECT_EQ(metric(m, "kvpack:request_errors_total"), 0);
}

// /metrics parses with promtool; its only lint is the `kvpack:` prefix's colon, which the
// vLLM-style names the issue asks for carry by design.
TEST(Serve, MetricsParseWithPromtool) {
  ServerProcess server("--parallel 1");
  ASSERT_GT(server.port(), 0);
  post(server.port(), "/v1/completions", json{{"prompt", kPrompt}, {"max_tokens", 4}}.dump());
  const std::string path = kvpack::testing::temp_path("serve_metrics.txt");
  std::ofstream(path) << get(server.port(), "/metrics").body;
  int status = 0;
  const std::string lint = shell_output("promtool check metrics < '" + path + "' 2>&1", &status);
  EXPECT_TRUE(status == 0 || status == 3) << lint;  // 1 would be a parse error
  std::istringstream in(lint);
  int problems = 0;
  for (std::string line; std::getline(in, line);) {
    ++problems;
    EXPECT_NE(line.find("metric names should not contain ':'"), std::string::npos) << line;
  }
  EXPECT_GT(problems, 10);  // promtool did read the families
}

// SIGTERM: /health turns 503, new requests are refused, the running one finishes, exit 0.
TEST(Serve, SigtermDrainsAndExitsZero) {
  // A grace period far above the request's time even on a loaded machine (600 tokens of the
  // probe model take about 2 s on 2 idle cores, 20-30 s while they compile).
  ServerProcess server("--parallel 1 --grace 120");
  ASSERT_GT(server.port(), 0);
  Reply running;
  std::thread t([&] {
    running = post(server.port(), "/v1/completions",
                   json{{"prompt", kPrompt}, {"max_tokens", 600}, {"ignore_eos", true}}.dump());
  });
  for (int i = 0;
       i < 200 && metric(get(server.port(), "/metrics").body, "kvpack:num_requests_running") != 1;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  server.signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(get(server.port(), "/health").status, 503);
  EXPECT_EQ(post(server.port(), "/v1/completions", json{{"prompt", kPrompt}}.dump()).status, 503);
  t.join();
  EXPECT_EQ(running.status, 200) << running.body;
  EXPECT_EQ(running.j["usage"]["completion_tokens"], 600);
  EXPECT_EQ(server.stop(0, 130), 0) << server.log();
}

// The bounded load test, small: 32 concurrent streaming clients sharing a 1,000-token system
// prompt. No lost or malformed response, the prompt computed about once (hits in usage and
// /metrics), its pages shared while the clients run, and the server's memory bounded.
TEST(Serve, ThirtyTwoClientsShareASystemPrompt) {
  ServerProcess server("--parallel 32 -c 2048");
  ASSERT_GT(server.port(), 0);
  std::atomic<bool> done{false};
  double shared_max = 0;
  std::thread watch([&] {
    while (!done) {
      shared_max = std::max(shared_max, metric(get(server.port(), "/metrics").body,
                                               "kvpack:kv_cache_shared_bytes{kv=\"k=f16,v=f16\"}"));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  const std::string script = std::string(KVPACK_SOURCE_DIR) + "/tests/serve/client/load.mjs";
  int status = 0;
  const std::string out =
      shell_output("node '" + script + "' " + server.url() + " 32 1 1000 32 120", &status);
  done = true;
  watch.join();
  ASSERT_EQ(status, 0) << out;
  const json r = json::parse(out);
  EXPECT_EQ(r["ok"], 32);
  EXPECT_EQ(r["failed"], 0);
  // Only the first request computes the shared pages: the other 31 find them cached.
  const double prompt = r["prompt_tokens"], cached = r["cached_prompt_tokens"];
  EXPECT_GT(cached / prompt, 0.9) << out;
  const std::string m = get(server.port(), "/metrics").body;
  EXPECT_GT(
      metric(m, "kvpack:prefix_cache_hits_total") / metric(m, "kvpack:prefix_cache_queries_total"),
      0.9);
  // Shared pages visible in /metrics while the clients run: sampled here every 5 ms and by the
  // client when each stream's first token arrives (a loaded machine can starve this thread's
  // polls through the whole window, as a CI run once did).
  EXPECT_GT(std::max(shared_max, r["shared_bytes_max"].get<double>()), 0) << out;
  // Reading each sequence's page table on its own would read the prompt's pages once per
  // sequence: far more than the distinct pages.
  EXPECT_GT(metric(m, "kvpack:decode_kv_page_bytes_total"),
            4 * metric(m, "kvpack:decode_kv_unique_page_bytes_total"));
  // Shared-prefix attention reads the prompt's pages once per step for all the sequences that
  // hold them: what it read is near the distinct pages, far below once per sequence.
  const double read = metric(m, "kvpack:decode_kv_read_bytes_total");
  EXPECT_GT(read, 0);
  EXPECT_LT(4 * read, metric(m, "kvpack:decode_kv_page_bytes_total"));
  // Peak resident memory: the model, a 64 MiB arena (only what is touched counts) and the
  // threads' stacks, far below what 32 private copies of the prompt would add.
  const std::string status_text =
      shell_output("cat /proc/" + std::to_string(server.pid()) + "/status");
  const size_t at = status_text.find("VmHWM:");
  ASSERT_NE(at, std::string::npos);
  EXPECT_LT(std::stol(status_text.substr(at + 6)), 256 * 1024) << status_text.substr(at, 40);  // kB
  EXPECT_EQ(server.stop(SIGTERM, 30), 0);
}

// Mutated bodies against a live server: every answer is 200 or a 4xx JSON error, never a 5xx,
// a dropped connection or a hang, and the server stays healthy.
TEST(Serve, MutatedBodiesGetOnly4xx) {
  ServerProcess server("--parallel 4 -c 64");
  ASSERT_GT(server.port(), 0);
  httplib::Client c("127.0.0.1", server.port());
  c.set_read_timeout(30, 0);
  c.set_keep_alive(true);
  c.set_tcp_nodelay(true);
  const char* paths[] = {"/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize"};
  Rng rng(777);
  int ok = 0, refused = 0;
  for (int i = 0; i < 3000; ++i) {
    const size_t which = rng.below(4);
    const std::string body = mutate(request_seeds()[which], rng);
    const auto res =
        c.Post(paths[rng.below(8) == 0 ? rng.below(4) : which], body, "application/json");
    ASSERT_TRUE(res) << "no answer to " << body;
    ASSERT_TRUE(res->status == 200 || (res->status >= 400 && res->status < 500))
        << res->status << " " << body;
    if (res->get_header_value("Content-Type") == "text/event-stream") {
      ASSERT_EQ(res->status, 200);
      EXPECT_TRUE(res->body.ends_with("data: [DONE]\n\n")) << res->body;
      ++ok;
      continue;
    }
    const json j = json::parse(res->body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << res->body;
    if (res->status == 200) {
      ++ok;
    } else {
      EXPECT_TRUE(j["error"]["message"].is_string()) << res->body;
      ++refused;
    }
  }
  EXPECT_GT(ok, 20);
  EXPECT_GT(refused, 2000);
  EXPECT_EQ(get(server.port(), "/health").status, 200);
  EXPECT_EQ(server.stop(SIGTERM, 30), 0);
}

}  // namespace
}  // namespace kvpack::testing
