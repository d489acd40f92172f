// Output files that are whole or absent, never half-written. Each file is written to a
// temporary file beside it (same folder, so the same file system), flushed to disk, and renamed
// over the target only once complete: a full disk, a file-size limit or a crash leaves the old
// file (or none) in place, never a truncated one. Several files (a report's .md, .json and
// .svg) are all written before the first rename, so one failure leaves none of them changed.
// SIGINT, SIGTERM or SIGHUP during a write removes the temporary file before kvpack ends.
//
// Targets that are devices or named pipes (/dev/null, /dev/stdout, a FIFO with a reader) are
// written directly: they cannot be replaced, and nothing partial lingers in them. A symbolic
// link is followed: the file it points to is replaced and the link kept.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace kvpack {

// Checks, before any long work, that `path` can be written: it is not a directory, not one of
// `inputs` (the same file under any name), its folder exists and a new file can be created in
// it (tried, then removed). Throws Error naming the path and the reason.
void check_output_path(const std::string& path, std::span<const std::string> inputs = {});

// Writes `bytes` to `path` as described above. Throws Error naming the path and the reason
// (e.g. "x.gguf: cannot write: No space left on device"); the target is then unchanged.
void write_output_file(const std::string& path, std::string_view bytes);

// One file of a set written together; `bytes` must outlive the call.
struct OutputFile {
  std::string path;
  std::string_view bytes;
};

// Writes every file: all temporary files first, then the renames.
void write_output_files(std::span<const OutputFile> files);

// A file produced piece by piece (a multi-gigabyte model need not be one buffer): `produce`
// calls the sink once per piece, in order. The same guarantees as write_output_file; an
// exception from `produce` removes the temporary file and propagates.
using OutputSink = std::function<void(std::string_view bytes)>;
using OutputProducer = std::function<void(const OutputSink& put)>;
void write_output_file(const std::string& path, const OutputProducer& produce);

}  // namespace kvpack
