// Per-target helper: load one vector of f32, f16, bf16 or e4m3 elements widened to f32.
// Included by Highway kernel files after <hwy/highway.h> (re-included once per target).
#if defined(KVPACK_ATTENTION_FLOAT_LOAD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVPACK_ATTENTION_FLOAT_LOAD_INL_H_
#undef KVPACK_ATTENTION_FLOAT_LOAD_INL_H_
#else
#define KVPACK_ATTENTION_FLOAT_LOAD_INL_H_
#endif

#include <hwy/highway.h>

namespace kvpack::attention::detail {
#ifndef KVPACK_ATTENTION_E4M3_TAG_
#define KVPACK_ATTENTION_E4M3_TAG_
// An OCP e4m3 byte (fp8 codes).
struct E4M3 {
  uint8_t bits;
};
#endif
}  // namespace kvpack::attention::detail

HWY_BEFORE_NAMESPACE();
namespace kvpack::attention::detail {
namespace HWY_NAMESPACE {

template <class D>
HWY_INLINE hwy::HWY_NAMESPACE::Vec<D> LoadAsFloat(D d, const float* p) {
  return hwy::HWY_NAMESPACE::LoadU(d, p);
}

template <class D>
HWY_INLINE hwy::HWY_NAMESPACE::Vec<D> LoadAsFloat(D d, const hwy::float16_t* p) {
  const hwy::HWY_NAMESPACE::Rebind<hwy::float16_t, D> dh;
  return hwy::HWY_NAMESPACE::PromoteTo(d, hwy::HWY_NAMESPACE::LoadU(dh, p));
}

template <class D>
HWY_INLINE hwy::HWY_NAMESPACE::Vec<D> LoadAsFloat(D d, const hwy::bfloat16_t* p) {
  const hwy::HWY_NAMESPACE::Rebind<hwy::bfloat16_t, D> db;
  return hwy::HWY_NAMESPACE::PromoteTo(d, hwy::HWY_NAMESPACE::LoadU(db, p));
}

// e4m3 bytes as f32 times 2^-8: the byte's 7 magnitude bits shifted into an f16's exponent and
// mantissa fields (bias 15 against e4m3's 7) and its sign into bit 15 is exactly that value,
// subnormals included. (w + (w & 0x80)) << 7 moves bit 7 to bit 15 and bits 0..6 to 7..13.
template <class D>
HWY_INLINE hwy::HWY_NAMESPACE::Vec<D> LoadAsFloat(D d, const E4M3* p) {
  namespace hn = hwy::HWY_NAMESPACE;
  const hn::Rebind<uint8_t, D> d8;
  const hn::Rebind<uint16_t, D> d16;
  const hn::Rebind<hwy::float16_t, D> dh;
  auto w = hn::PromoteTo(d16, hn::LoadU(d8, reinterpret_cast<const uint8_t*>(p)));
  w = hn::ShiftLeft<7>(hn::Add(w, hn::And(w, hn::Set(d16, uint16_t{0x80}))));
  return hn::PromoteTo(d, hn::BitCast(dh, w));
}

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::attention::detail
HWY_AFTER_NAMESPACE();

#endif  // KVPACK_ATTENTION_FLOAT_LOAD_INL_H_
