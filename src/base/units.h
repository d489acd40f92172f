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

}  // namespace kvpack
