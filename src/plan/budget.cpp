// Memory budgets: sizes and named devices.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "base/error.h"
#include "base/units.h"
#include "kvpack/plan.h"

namespace kvpack::plan {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;

// Apple silicon: macOS lets the GPU wire about two thirds of unified memory on machines with up
// to 36 GB and about three quarters above (the default of the iogpu.wired_limit_mb sysctl, which
// Metal reports as recommendedMaxWorkingSetSize). The rest is the OS reserve.
constexpr uint64_t mac_usable(uint64_t gib) {
  return gib <= 36 ? gib * kGiB * 2 / 3 : gib * kGiB * 3 / 4;
}

// Discrete GPUs: the whole memory; the driver's context is part of the planner's overhead.
constexpr Device kDevices[] = {
    {"gpu-16gb", "any 16 GB GPU", 16 * kGiB, 16 * kGiB},
    {"gpu-24gb", "any 24 GB GPU", 24 * kGiB, 24 * kGiB},
    {"gpu-32gb", "any 32 GB GPU", 32 * kGiB, 32 * kGiB},
    {"rtx-4060ti-16gb", "NVIDIA RTX 4060 Ti 16 GB", 16 * kGiB, 16 * kGiB},
    {"rtx-4080", "NVIDIA RTX 4080 / 4080 Super, 16 GB", 16 * kGiB, 16 * kGiB},
    {"rtx-5080", "NVIDIA RTX 5080, 16 GB", 16 * kGiB, 16 * kGiB},
    {"rtx-3090", "NVIDIA RTX 3090, 24 GB", 24 * kGiB, 24 * kGiB},
    {"rtx-4090", "NVIDIA RTX 4090, 24 GB", 24 * kGiB, 24 * kGiB},
    {"rx-7900xtx", "AMD Radeon RX 7900 XTX, 24 GB", 24 * kGiB, 24 * kGiB},
    {"rtx-5090", "NVIDIA RTX 5090, 32 GB", 32 * kGiB, 32 * kGiB},
    {"mac-16gb", "Apple silicon Mac, 16 GB unified (GPU may wire 2/3)", 16 * kGiB, mac_usable(16)},
    {"mac-24gb", "Apple silicon Mac, 24 GB unified (GPU may wire 2/3)", 24 * kGiB, mac_usable(24)},
    {"mac-32gb", "Apple silicon Mac, 32 GB unified (GPU may wire 2/3)", 32 * kGiB, mac_usable(32)},
    {"mac-36gb", "Apple silicon Mac, 36 GB unified (GPU may wire 2/3)", 36 * kGiB, mac_usable(36)},
    {"mac-48gb", "Apple silicon Mac, 48 GB unified (GPU may wire 3/4)", 48 * kGiB, mac_usable(48)},
    {"mac-64gb", "Apple silicon Mac, 64 GB unified (GPU may wire 3/4)", 64 * kGiB, mac_usable(64)},
    {"mac-96gb", "Apple silicon Mac, 96 GB unified (GPU may wire 3/4)", 96 * kGiB, mac_usable(96)},
    {"mac-128gb", "Apple silicon Mac, 128 GB unified (GPU may wire 3/4)", 128 * kGiB,
     mac_usable(128)},
    {"mac-192gb", "Apple silicon Mac, 192 GB unified (GPU may wire 3/4)", 192 * kGiB,
     mac_usable(192)},
};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::span<const Device> devices() {
  return kDevices;
}

Budget parse_budget(std::string_view text) {
  for (const auto& d : kDevices) {
    if (!iequals(d.name, text)) continue;
    Budget b{d.usable, std::string(d.name)};
    if (d.usable != d.memory) {
      b.label += fmt::format(" ({} of {})", format_bytes(static_cast<double>(d.usable)),
                             format_bytes(static_cast<double>(d.memory)));
    } else {
      b.label += fmt::format(" ({})", format_bytes(static_cast<double>(d.memory)));
    }
    return b;
  }
  const bool looks_numeric =
      !text.empty() && (std::isdigit(static_cast<unsigned char>(text[0])) || text[0] == '.');
  if (!looks_numeric) {
    std::string names;
    for (const auto& d : kDevices) names += (names.empty() ? "" : ", ") + std::string(d.name);
    fail("invalid --budget '{}': expected a size such as 16GiB or 24GB, or a device ({})", text,
         names);
  }
  const uint64_t bytes = parse_bytes(text);
  if (bytes == 0) fail("invalid --budget '{}': expected a size above zero", text);
  return {bytes, format_bytes(static_cast<double>(bytes))};
}

}  // namespace kvpack::plan
