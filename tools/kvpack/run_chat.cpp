// `kvpack run --chat`: reads user turns (one-shot from -p/-f, or line by line from stdin, with a
// "> " prompt on a terminal), streams each reply to stdout, and reports on stderr what the
// conversation cost: the generation and turn logic is model::ChatSession.
#include "run_chat.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "base/error.h"
#include "model/chat_session.h"

namespace kvpack::cli {
namespace {

void write_out(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

model::ChatFormat load_format(const model::Model& model, const model::Tokenizer& tok,
                              const std::string& template_file) {
  if (!template_file.empty()) {
    std::ifstream f(template_file, std::ios::binary);
    if (!f) fail("cannot read the chat template file '{}'", template_file);
    std::stringstream ss;
    ss << f.rdbuf();
    try {
      return model::ChatFormat::from_template(ss.str(), tok);
    } catch (const Error& e) {
      fail("{}: {}", template_file, e.what());
    }
  }
  std::string warning;
  model::ChatFormat format = model::ChatFormat::from_gguf(model.file(), tok, &warning);
  if (!warning.empty()) std::fprintf(stderr, "kvpack: warning: %s\n", warning.c_str());
  return format;
}

// The next user turn from stdin: one line, or several joined while a line ends in '\'. Empty
// lines are skipped; nullopt at the end of the input.
std::optional<std::string> read_turn(bool terminal) {
  std::string turn;
  std::string line;
  for (;;) {
    if (terminal) write_out(turn.empty() ? "> " : ". ");
    if (!std::getline(std::cin, line)) {
      if (terminal) write_out("\n");
      return turn.empty() ? std::nullopt : std::optional(turn);
    }
    if (!line.empty() && line.back() == '\\') {
      line.pop_back();
      turn += line + "\n";
      continue;
    }
    turn += line;
    if (!turn.empty()) return turn;
  }
}

}  // namespace

ChatRunTotals run_chat(const model::Model& model, model::Forward& forward, cache::Cache& cache,
                       cache::SeqId seq, model::Sampler& sampler, const ChatRunOptions& o) {
  const model::Tokenizer& tok = *model.tokenizer();
  const model::ChatFormat format = load_format(model, tok, o.template_file);
  model::ChatSession chat(
      forward, cache, seq, sampler, format, tok,
      {.system_prompt = o.system_prompt, .max_reply_tokens = o.n_predict, .context = o.context});
  const bool terminal = !o.one_shot && isatty(STDIN_FILENO) != 0;
  ChatRunTotals totals;
  int turns = 0;
  int ended = 0;
  for (bool first = true;; first = false) {
    std::optional<std::string> turn =
        o.one_shot ? (first ? std::optional(o.prompt) : std::nullopt) : read_turn(terminal);
    if (!turn) break;
    const model::ChatReply r = chat.reply(std::move(*turn), write_out);
    write_out("\n");
    ++turns;
    ended += r.end_of_generation;
    totals.prompt_tokens += r.prompt_tokens;
    totals.prompt_s += r.prompt_s;
    totals.decode_evals += r.decode_evals;
    totals.decode_s += r.decode_s;
  }
  std::fprintf(stderr,
               "kvpack: chat: %d turns (%d ended by an end-of-generation token), %lld tokens in "
               "the cache, %lld evaluated; format: %s\n",
               turns, ended, static_cast<long long>(chat.cached_tokens()),
               static_cast<long long>(totals.prompt_tokens + totals.decode_evals),
               format.description().c_str());
  return totals;
}

}  // namespace kvpack::cli
