// The page arena: one mmap reservation, layer-major pools (see arena.h).
#include "cache/arena.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/aligned.h"
#include "base/error.h"
#include "base/units.h"

namespace kvpack::cache {

Arena::Arena(const std::vector<size_t>& k_slice_bytes, const std::vector<size_t>& v_slice_bytes,
             uint32_t n_pages)
    : n_pages_(n_pages) {
  KVPACK_ASSERT(k_slice_bytes.size() == v_slice_bytes.size() && n_pages > 0, "arena geometry");
  const long sys_page = sysconf(_SC_PAGESIZE);
  if (sys_page > 0) os_page_ = static_cast<size_t>(sys_page);
  size_t offset = 0;
  for (size_t l = 0; l < k_slice_bytes.size(); ++l) {
    for (size_t slice : {k_slice_bytes[l], v_slice_bytes[l]}) {
      KVPACK_ASSERT(slice > 0 && slice % kCacheLine == 0, "slice of {} bytes", slice);
      pools_.push_back({offset, slice});
      offset = round_up(offset + slice * n_pages, os_page_);
      page_bytes_ += slice;
    }
  }
  mapped_bytes_ = offset;
  void* p = mmap(nullptr, mapped_bytes_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    fail("cannot reserve the kv cache arena of {} ({} pages): {}", format_bytes(mapped_bytes_),
         n_pages, std::strerror(errno));
  }
  base_ = static_cast<uint8_t*>(p);
}

Arena::~Arena() {
  if (base_ != nullptr) munmap(base_, mapped_bytes_);
}

void Arena::copy_page(uint32_t from, uint32_t to) {
  KVPACK_ASSERT(from != to && from < n_pages_ && to < n_pages_, "copy page {} -> {}", from, to);
  for (const Pool& pool : pools_) {
    uint8_t* base = base_ + pool.offset;
    std::memcpy(base + to * pool.stride, base + from * pool.stride, pool.stride);
  }
}

void Arena::release(uint32_t first) {
  if (first >= n_pages_) return;
  for (const Pool& pool : pools_) {
    const size_t begin = round_up(pool.offset + first * pool.stride, os_page_);
    const size_t end = round_up(pool.offset + n_pages_ * pool.stride, os_page_);
    if (end <= begin) continue;
    // Failure is harmless (the memory simply stays committed), so it is not an error.
    (void)madvise(base_ + begin, end - begin, MADV_DONTNEED);
  }
}

}  // namespace kvpack::cache
