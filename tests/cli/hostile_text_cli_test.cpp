// Text from files reaching the terminal and JSON (docs/cli.md, "Bad input"): a GGUF whose
// general.name and keys carry escape sequences, a forged error line, a NUL and bytes that are
// not UTF-8; a file name with such bytes; a model that generates bytes that are not UTF-8.
// GGUF keys and general.name reached the terminal raw, an error was cut at a NUL, and every
// --json writer aborted on the first byte that is not UTF-8.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "cli_fixtures.h"
#include "cli_run.h"
#include "model/gguf_writer.h"
#include "read_file.h"
#include "shared_data.h"

namespace kvpack::testing {
namespace {

using model::GgufFile;
using model::GgufWriter;

const std::string kReplacement = "\xef\xbf\xbd";  // U+FFFD

// stories260K with a hostile general.name and a hostile key, saved under a hostile file name.
std::string hostile_model(const std::filesystem::path& model, const ScratchDir& dir) {
  GgufWriter w = copy_gguf(GgufFile::open(model.string()));
  w.set("general.name", model::gguf_string(hostile_name()));
  w.set(hostile_name(), model::gguf_string(hostile_name()));
  const std::string path = dir / "m\xff\x1b[2Jodel.gguf";
  w.write(path);
  return path;
}

// stories260K whose every ordinary token's text starts with the byte 0xff, so whatever it
// generates is not UTF-8.
std::string non_utf8_model(const std::filesystem::path& model, const ScratchDir& dir) {
  const GgufFile f = GgufFile::open(model.string());
  GgufWriter w = copy_gguf(f);
  std::vector<std::string> tokens = *f.get_strings("tokenizer.ggml.tokens");
  const std::vector<int64_t>& types = *f.get_ints("tokenizer.ggml.token_type");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (types[i] == 1) tokens[i] = "\xff" + tokens[i];
  }
  w.set("tokenizer.ggml.tokens", model::gguf_string_array(tokens));
  const std::string path = dir / "bytes.gguf";
  w.write(path);
  return path;
}

void expect_valid_json(const CliResult& r, const std::string& what) {
  ASSERT_EQ(r.status, 0) << what << "\n" << r.err;
  EXPECT_TRUE(nlohmann::json::accept(r.out)) << what << "\n" << r.out.substr(0, 500);
  EXPECT_FALSE(has_raw_controls(r.err)) << what << "\n" << r.err;
}

TEST(HostileTextCli, FileTextIsEscapedOnTheTerminal) {
  KVPACK_SHARED_FILE(model, "models/stories260K.gguf");
  const ScratchDir dir("hostile_terminal");
  const std::string m = shell_quote(hostile_model(model, dir));
  for (const std::string& args : {"inspect --no-tensors " + m, "inspect " + m, "plan -m " + m,
                                  "bench decode -d 0 -n 1 -r 1 -t 1 -m " + m}) {
    SCOPED_TRACE(args);
    const CliResult r = run_kvpack(args);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_FALSE(has_raw_controls(r.out)) << r.out.substr(0, 2000);
    EXPECT_FALSE(has_raw_controls(r.err)) << r.err;
    EXPECT_EQ(r.out.find("\nkvpack: error: forged"), std::string::npos);
    EXPECT_EQ(r.out.find("\xe2\x80\xae"), std::string::npos);  // the override, raw
  }
  const CliResult r = run_kvpack("inspect --no-tensors " + m);
  for (const char* shown : {"\\x1b[2J\\x1b[31mevil\\nkvpack: error: forged", "\\u{202e}",
                            "\\x00nul\\xff\\xfe\\xc3", "m\\xff\\x1b[2Jodel.gguf"}) {
    EXPECT_NE(r.out.find(shown), std::string::npos) << shown << "\n" << r.out.substr(0, 3000);
  }
}

// The message is printed whole, escaped, on one line: a NUL no longer cuts it, and a newline
// in the file cannot start a forged line.
TEST(HostileTextCli, ErrorsAreWholeAndEscaped) {
  KVPACK_SHARED_FILE(model, "models/stories260K.gguf");
  const ScratchDir dir("hostile_errors");
  GgufWriter w = copy_gguf(GgufFile::open(model.string()));
  w.set("general.architecture", model::gguf_string(hostile_name()));
  w.write(dir / "arch.gguf");
  const CliResult r = expect_one_line_error("run -p hi -m " + shell_quote(dir / "arch.gguf"),
                                            "\\x00nul\\xff\\xfe\\xc3");
  EXPECT_FALSE(has_raw_controls(r.err)) << r.err;
  EXPECT_NE(r.err.find("evil\\nkvpack: error: forged"), std::string::npos) << r.err;
}

// Every --json command stays valid JSON: bytes that are not UTF-8 (file names, general.name)
// become U+FFFD.
TEST(HostileTextCli, EveryJsonOutputIsValid) {
  KVPACK_SHARED_FILE(model, "models/stories260K.gguf");
  KVPACK_SHARED_FILE(text, "data/tinystories_valid_sample.txt");
  const ScratchDir dir("hostile_json");
  const std::string m = shell_quote(hostile_model(model, dir));
  const std::string t = shell_quote(dir / "t\xff\xfe.txt");
  std::filesystem::copy_file(text, dir / "t\xff\xfe.txt");
  const std::string eval = " -m " + m + " -f " + t + " -t 2 -q --json -c 64 ";
  const std::vector<std::string> commands = {
      "plan --json -m " + m,
      "plan --json --kv k=q8,v=q8",
      "formats --json",
      "bench decode --json -d 0 -n 1 -r 1 -t 1 -m " + m,
      "bench cache --json --sessions 2 --prefix 64 --turns 1 --layers 2 --budget 64MiB",
      "eval ppl" + eval + "--chunks 1 --kv k=q8,v=q8",
      "eval attention" + eval + "--kv k=q8,v=q8",
      "eval policy" + eval + "--chunks 1 --bits 6 --compare 1",
      "eval passkey -m " + m +
          " -t 2 -q --json --lengths 200 --depths 50 --trials 1 "
          "--kv k=q8,v=q8",
  };
  for (const std::string& c : commands) {
    SCOPED_TRACE(c);
    const CliResult r = run_kvpack(c);
    expect_valid_json(r, c);
  }
  const CliResult r = run_kvpack("plan --json -m " + m);
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_NE(j["model"]["name"].get<std::string>().find(kReplacement), std::string::npos);
  EXPECT_NE(j["model"]["source"].get<std::string>().find(kReplacement), std::string::npos);
}

// Generated bytes that are not UTF-8 in eval passkey's answers: --json aborted, and -o wrote the
// Markdown, then aborted before the JSON and the SVG. Now all three are written and valid.
TEST(HostileTextCli, GeneratedBytesInPasskeyReports) {
  KVPACK_SHARED_FILE(model, "models/stories260K.gguf");
  const ScratchDir dir("hostile_passkey");
  const std::string m = shell_quote(non_utf8_model(model, dir));
  const std::string args = "eval passkey -m " + m +
                           " -t 2 -q --lengths 400 --depths 50 --trials 2 --kv k=q8,v=q8 -o " +
                           shell_quote(dir / "report");
  const CliResult r = run_kvpack(args + " --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  std::string answers;
  for (const auto& cell : j["results"][0]["cells"]) {
    for (const auto& trial : cell["trials"]) answers += trial["answer"].get<std::string>();
  }
  EXPECT_NE(answers.find(kReplacement), std::string::npos) << answers;
  EXPECT_TRUE(nlohmann::json::accept(read_text(dir / "report.json")));
  EXPECT_NE(read_text(dir / "report.md").find("kvpack eval passkey"), std::string::npos);
  const std::string svg = read_text(dir / "report.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u) << svg.substr(0, 200);
  EXPECT_FALSE(has_raw_controls(svg));
  EXPECT_EQ(temp_files_in(dir.path()), 0);
  // The tables for the terminal carry no raw bytes from the model.
  const CliResult text = run_kvpack(args);
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_FALSE(has_raw_controls(text.out));
  EXPECT_EQ(text.out.find('\xff'), std::string::npos) << text.out;
}

}  // namespace
}  // namespace kvpack::testing
