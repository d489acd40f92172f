#include "attention/bench/synthetic.h"

#include <algorithm>
#include <cstring>

#include "base/rng.h"

namespace kvpack::attention::bench {
namespace {

// Distinct encoded pages per head; the rest are copies (content does not change the speed).
constexpr int kDistinctPages = 8;

std::unique_ptr<format::Codec> codec_for(format::FormatId id, format::Role role, const Shape& s) {
  return format::make_codec(
      id, {role, s.head_dim, s.page_tokens, s.n_kv_heads, format::layer_seed(0, role)});
}

// kDistinctPages encoded slices (all heads) of Gaussian data.
std::vector<uint8_t> template_slices(const format::Codec& codec, const Shape& s, Rng& rng) {
  std::vector<uint8_t> out(codec.slice_bytes() * kDistinctPages);
  std::vector<float> x(static_cast<size_t>(s.page_tokens) * s.head_dim);
  for (int p = 0; p < kDistinctPages; ++p) {
    for (int h = 0; h < s.n_kv_heads; ++h) {
      for (auto& v : x) v = static_cast<float>(rng.normal());
      codec.encode(h, x.data(), s.page_tokens,
                   out.data() + p * codec.slice_bytes() + h * codec.head_bytes());
    }
  }
  return out;
}

AlignedArray<uint8_t> filled_pool(const std::vector<uint8_t>& templ, size_t slice, size_t n_pages) {
  AlignedArray<uint8_t> pool = make_aligned<uint8_t>(slice * n_pages);
  for (size_t p = 0; p < n_pages; ++p) {
    std::memcpy(pool.get() + p * slice, templ.data() + (p % kDistinctPages) * slice, slice);
  }
  return pool;
}

cache::LayerView make_view(const format::Codec& k, const format::Codec& v, const Shape& s) {
  cache::LayerView view;
  view.k_codec = &k;
  view.v_codec = &v;
  view.k_page_stride = k.slice_bytes();
  view.v_page_stride = v.slice_bytes();
  view.n_kv_heads = s.n_kv_heads;
  view.head_dim_k = s.head_dim;
  view.head_dim_v = s.head_dim;
  view.page_tokens = s.page_tokens;
  return view;
}

}  // namespace

size_t layer_bytes(format::FormatId k, format::FormatId v, const Shape& s, int64_t context) {
  const size_t pages = static_cast<size_t>(context / s.page_tokens);
  const size_t tail = static_cast<size_t>(context % s.page_tokens);
  const size_t block = format::info(k).head_bytes(s.head_dim, s.page_tokens) +
                       format::info(v).head_bytes(s.head_dim, s.page_tokens);
  return s.n_kv_heads * (pages * block + tail * 2 * s.head_dim * sizeof(float));
}

SyntheticLayers::SyntheticLayers(format::FormatId k, format::FormatId v, const Shape& s,
                                 int64_t context, size_t working_set, uint64_t seed,
                                 bool shuffle_pages)
    : k_codec_(codec_for(k, format::Role::K, s)), v_codec_(codec_for(v, format::Role::V, s)) {
  Rng rng(seed);
  const size_t n_pages = static_cast<size_t>(context / s.page_tokens);
  const int tail = static_cast<int>(context % s.page_tokens);
  bytes_per_call_ = layer_bytes(k, v, s, context);
  const size_t n_layers =
      std::max<size_t>(2, (working_set + bytes_per_call_ - 1) / bytes_per_call_);
  const auto k_templ = template_slices(*k_codec_, s, rng);
  const auto v_templ = template_slices(*v_codec_, s, rng);
  k_tail_.resize(static_cast<size_t>(s.n_kv_heads) * tail * s.head_dim);
  v_tail_.resize(k_tail_.size());
  for (auto& x : k_tail_) x = static_cast<float>(rng.normal());
  for (auto& x : v_tail_) x = static_cast<float>(rng.normal());
  layers_.resize(n_layers);
  for (Layer& layer : layers_) {
    layer.k_pool = filled_pool(k_templ, k_codec_->slice_bytes(), n_pages);
    layer.v_pool = filled_pool(v_templ, v_codec_->slice_bytes(), n_pages);
    layer.ids.resize(n_pages);
    for (size_t i = 0; i < n_pages; ++i) layer.ids[i] = static_cast<uint32_t>(i);
    for (size_t i = n_pages; shuffle_pages && i > 1; --i) {
      std::swap(layer.ids[i - 1], layer.ids[rng.below(i)]);
    }
    cache::LayerView view = make_view(*k_codec_, *v_codec_, s);
    view.k_pages = layer.k_pool.get();
    view.v_pages = layer.v_pool.get();
    view.page_ids = layer.ids;
    view.k_tail = k_tail_.data();
    view.v_tail = v_tail_.data();
    view.tail_tokens = tail;
    view.tail_head_stride = static_cast<size_t>(tail);
    views_.push_back(view);
  }
}

DequantBaseline::DequantBaseline(const Shape& s, int64_t context)
    : k_codec_(codec_for(format::FormatId::f16, format::Role::K, s)),
      v_codec_(codec_for(format::FormatId::f16, format::Role::V, s)) {
  const size_t n_pages = static_cast<size_t>(context / s.page_tokens);
  k_pool_ = make_aligned<uint8_t>(k_codec_->slice_bytes() * n_pages);
  v_pool_ = make_aligned<uint8_t>(v_codec_->slice_bytes() * n_pages);
  ids_.resize(n_pages);
  for (size_t i = 0; i < n_pages; ++i) ids_[i] = static_cast<uint32_t>(i);
  view_ = make_view(*k_codec_, *v_codec_, s);
  view_.k_pages = k_pool_.get();
  view_.v_pages = v_pool_.get();
  view_.page_ids = ids_;
}

const cache::LayerView& DequantBaseline::dequantize(const cache::LayerView& src, ThreadPool& pool) {
  const int pt = src.page_tokens;
  pool.parallel_for(src.n_kv_heads, [&](int64_t task, int) {
    const int h = static_cast<int>(task);
    std::vector<float> rows(static_cast<size_t>(pt) * src.head_dim_k);
    for (size_t p = 0; p < src.page_ids.size(); ++p) {
      src.k_codec->decode(h, src.k_block(p, h), pt, rows.data());
      k_codec_->encode(h, rows.data(), pt,
                       k_pool_.get() + p * k_codec_->slice_bytes() + h * k_codec_->head_bytes());
      src.v_codec->decode(h, src.v_block(p, h), pt, rows.data());
      v_codec_->encode(h, rows.data(), pt,
                       v_pool_.get() + p * v_codec_->slice_bytes() + h * v_codec_->head_bytes());
    }
  });
  view_.k_tail = src.k_tail;
  view_.v_tail = src.v_tail;
  view_.tail_tokens = src.tail_tokens;
  view_.tail_head_stride = src.tail_head_stride;
  return view_;
}

}  // namespace kvpack::attention::bench
