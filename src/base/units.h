// Parsing and printing of byte sizes and token counts given on the command line.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kvpack {

// "16GiB", "24GB", "512MiB", "1.5G", "1073741824". K/M/G/T and KiB..TiB are powers of 1024;
// KB/MB/GB/TB are powers of 1000; a bare number is bytes. Throws Error naming the text.
uint64_t parse_bytes(std::string_view text);

// "4096", "4k", "32K", "128k", "1M": k = 1024 tokens, M = 1024^2. Throws Error naming the text.
int64_t parse_count(std::string_view text);
// Counts from an option given once or repeated, each a comma-separated list: {"0,4k", "16k"}
// -> {0, 4096, 16384}. Throws Error naming the bad count.
std::vector<int64_t> parse_counts(std::span<const std::string> texts);

// 1536 MiB -> "1.50 GiB"; below 1 KiB -> "512 B".
std::string format_bytes(double bytes);

// 32768 -> "32k", 131072 -> "128k", 1000 -> "1000".
std::string format_count(int64_t n);

// The longest context any flag may ask for: 16M tokens, beyond every model's (the longest
// claim 10M), so a typo such as -c 2000000000 is refused before memory is reserved for it.
inline constexpr int64_t kMaxContextTokens = int64_t{1} << 24;

// A token count for `flag` (parse_count) within [min, kMaxContextTokens]; Error names the flag
// and the limit.
int64_t parse_context(std::string_view text, std::string_view flag, int64_t min = 1);
// parse_counts with every count bounded as parse_context does.
std::vector<int64_t> parse_contexts(std::span<const std::string> texts, std::string_view flag,
                                    int64_t min = 1);

// Bytes of physical memory on this machine (0 when unknown): the bound on what a command may
// allocate and touch (--budget of bench cache, --max-memory), past which the system kills it.
uint64_t physical_memory_bytes();

// parse_bytes for a flag whose bytes are allocated and touched: at most the physical memory.
uint64_t parse_memory_bytes(std::string_view text, std::string_view flag);

}  // namespace kvpack
