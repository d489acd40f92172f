// `kvpack serve` on fixture models of other architectures (../shared/models/arch: Qwen 3, and
// Gemma 3 with its sliding-window layers): /v1/completions answers, plain and streamed through
// curl, token for token equal to `kvpack run` with the same seed, one request at a time and
// several at once (the later ones reuse the prompt's cached pages, and their decode steps batch
// over those shared pages while they overlap). The fixtures carry no chat template, so only the
// completions endpoint is used.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/json_text.h"
#include "cli_run.h"
#include "server_process.h"
#include "shared_data.h"

namespace kvpack::testing {
namespace {

using nlohmann::json;

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// `kvpack run`'s continuation of the prompt file, as a JSON body carries it: the fixtures'
// random weights pick tokens whose bytes are not always UTF-8, and JSON text replaces each byte
// that is not with U+FFFD (base/json_text.h), as the server writes them.
std::string run_text(const std::filesystem::path& model, const std::filesystem::path& prompt,
                     const std::string& args) {
  const CliResult r = run_kvpack("run -m '" + model.string() + "' -f '" + prompt.string() +
                                 "' -t 2 -c 512 --no-display-prompt " + args);
  EXPECT_EQ(r.status, 0) << r.err;
  return json::parse(json_text(json(r.out), -1)).get<std::string>();
}

json complete(int port, const json& body) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120, 0);
  const auto res = c.Post("/v1/completions", body.dump(), "application/json");
  if (!res) return json{{"error", "no response"}};
  EXPECT_EQ(res->status, 200) << res->body;
  return json::parse(res->body, nullptr, false);
}

// The text of curl's SSE stream of completion chunks.
std::string streamed_text(const std::string& url, const json& body) {
  const std::string path = kvpack::testing::temp_path("arch_serve_body.json");
  json b = body;
  b["stream"] = true;
  std::ofstream(path) << b.dump();
  int status = 0;
  const std::string stream =
      shell_output("curl -sN --max-time 120 " + url +
                       "/v1/completions -H 'Content-Type: application/json' -d @" + path,
                   &status);
  EXPECT_EQ(status, 0);
  EXPECT_NE(stream.find("data: [DONE]"), std::string::npos) << stream;
  std::string text;
  std::istringstream in(stream);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("data: ", 0) != 0 || line == "data: [DONE]") continue;
    const json chunk = json::parse(line.substr(6));
    for (const json& c : chunk["choices"]) text += c["text"].get<std::string>();
  }
  return text;
}

class ArchServe : public ::testing::TestWithParam<const char*> {};

TEST_P(ArchServe, CompletionsMatchRunTokenForToken) {
  const std::string arch = GetParam();
  KVPACK_SHARED_FILE(model, fmt::format("models/arch/models/{}-f16.gguf", arch));
  KVPACK_SHARED_FILE(prompt_path, "models/arch/prompts/prose.txt");
  const std::string prompt = read_text(prompt_path);
  ServerProcess server("--parallel 3 -c 512", model);
  ASSERT_GT(server.port(), 0);
  // Sampled with a seed, then greedy.
  const json sampled = {{"prompt", prompt}, {"max_tokens", 24}, {"seed", 7}};
  const std::string want_sampled = run_text(model, prompt_path, "-n 24 --seed 7");
  const json answer = complete(server.port(), sampled);
  EXPECT_EQ(answer["choices"][0]["text"], want_sampled) << answer.dump();
  EXPECT_EQ(answer["usage"]["completion_tokens"], 24);
  EXPECT_EQ(streamed_text(server.url(), sampled), want_sampled);
  // Three at once with the same prompt: the second and third find its pages cached, and their
  // decode steps run together over the shared pages.
  const json greedy = {{"prompt", prompt}, {"max_tokens", 24}, {"temperature", 0}};
  const std::string want_greedy = run_text(model, prompt_path, "-n 24 --temp 0");
  std::vector<json> answers(3);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < answers.size(); ++i) {
    clients.emplace_back([&, i] { answers[i] = complete(server.port(), greedy); });
  }
  for (std::thread& t : clients) t.join();
  for (const json& a : answers) EXPECT_EQ(a["choices"][0]["text"], want_greedy) << a.dump();
  EXPECT_EQ(server.stop(SIGTERM, 30), 0) << server.log();
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ArchServe, ::testing::Values("qwen3", "gemma3"));

}  // namespace
}  // namespace kvpack::testing
