// Internal: each format family file adds its registry rows through one function, so the
// registry (registry.cpp) stays a list of families and a new family is one line there.
#pragma once

#include <vector>

#include "kvpack/format.h"

namespace kvpack::format {

void add_float_formats(std::vector<FormatInfo>& rows);  // float_formats.cpp: f32 f16 bf16
void add_fp8_format(std::vector<FormatInfo>& rows);     // fp8_format.cpp: fp8
void add_int_formats(std::vector<FormatInfo>& rows);    // int_formats.cpp: q8 q4 q4a
void add_kivi_formats(std::vector<FormatInfo>& rows);   // kivi_formats.cpp: kivi4 kivi2
void add_turbo_formats(std::vector<FormatInfo>& rows);  // turbo.cpp: turbo2 turbo3 turbo4
// turbo_qjl.cpp: turbo3_qjl turbo4_qjl (keys only)
void add_turbo_qjl_formats(std::vector<FormatInfo>& rows);

// Shared checks used by the rows' `unsupported` functions.
std::string require_role(const FormatInfo& info, const CodecConfig& config);
std::string require_dim_multiple(const CodecConfig& config, int multiple);

}  // namespace kvpack::format
