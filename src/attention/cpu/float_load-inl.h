// Per-target helper: load one vector of f32, f16 or bf16 elements widened to f32.
// Included by Highway kernel files after <hwy/highway.h> (re-included once per target).
#if defined(KVPACK_ATTENTION_FLOAT_LOAD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVPACK_ATTENTION_FLOAT_LOAD_INL_H_
#undef KVPACK_ATTENTION_FLOAT_LOAD_INL_H_
#else
#define KVPACK_ATTENTION_FLOAT_LOAD_INL_H_
#endif

#include <hwy/highway.h>

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

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::attention::detail
HWY_AFTER_NAMESPACE();

#endif  // KVPACK_ATTENTION_FLOAT_LOAD_INL_H_
