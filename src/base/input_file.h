// Input files given on the command line, opened so that a careless or hostile path cannot hang
// or mislead kvpack: a named pipe given as a model would block open() until a writer came, a
// directory reads as an empty file through std::ifstream, /dev/zero never ends.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace kvpack {

// Text inputs (prompts, evaluation texts) larger than this are refused: 1 GiB, far beyond any
// text kvpack can evaluate in reasonable time, and a bound on memory when the input is a pipe.
inline constexpr uint64_t kMaxTextBytes = uint64_t{1} << 30;

// "a directory", "a named pipe", "a character device", ... for messages.
std::string_view file_kind(mode_t mode);

// Opens `path` read-only without blocking and returns the descriptor, refusing anything but a
// regular file (a model must be mappable). `what` names the input in errors ("model"). *size
// receives the file's size. Throws Error naming the path.
int open_regular_file(const std::string& path, std::string_view what, uint64_t* size);

// The whole content of a text input: a regular file, or a pipe or terminal read to its end
// (`-f /dev/stdin`). Directories and other devices are refused, and so is more than max_bytes
// (the message says the limit). `what` names the input ("prompt file", "text file").
std::string read_text_input(const std::string& path, std::string_view what,
                            uint64_t max_bytes = kMaxTextBytes);

}  // namespace kvpack
