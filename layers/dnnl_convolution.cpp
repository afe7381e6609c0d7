#include "layers/dnnl_convolution.h"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/common.h"

#if COCO_WITH_DNNL
#include <dnnl.hpp>
#endif

namespace coco {

bool ConvGeometry::operator==(const ConvGeometry& o) const {
  return n == o.n && c == o.c && h == o.h && w == o.w && oc == o.oc && oh == o.oh && ow == o.ow && kh == o.kh &&
         kw == o.kw && sh == o.sh && sw == o.sw && ph == o.ph && pw == o.pw && dh == o.dh && dw == o.dw &&
         group == o.group && bias == o.bias;
}

#if COCO_WITH_DNNL

bool dnnl_available() { return true; }

namespace {
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// A user-layout buffer (pointer set per call) and, if oneDNN wants another layout,
// a buffer in that layout plus the reorders between the two.
struct Staged {
  dnnl::memory user, inner;
  bool reordered = false;
  void init(const dnnl::memory::desc& user_md, const dnnl::memory::desc& want) {
    user = dnnl::memory(user_md, cpu_engine(), DNNL_MEMORY_NONE);
    reordered = want != user_md;
    inner = reordered ? dnnl::memory(want, cpu_engine()) : dnnl::memory(want, cpu_engine(), DNNL_MEMORY_NONE);
  }
  // Makes `inner` hold the user data at p.
  dnnl::memory& in(dnnl::stream& s, const float* p) {
    user.set_data_handle(const_cast<float*>(p));
    if (reordered)
      dnnl::reorder(user, inner).execute(s, user, inner);
    else
      inner.set_data_handle(const_cast<float*>(p));
    return inner;
  }
  // Points the result buffer at p (direct) or returns the staging buffer.
  dnnl::memory& out(float* p) {
    user.set_data_handle(p);
    if (!reordered) inner.set_data_handle(p);
    return inner;
  }
  void flush(dnnl::stream& s) {
    if (reordered) dnnl::reorder(inner, user).execute(s, inner, user);
  }
};
}  // namespace

struct DnnlConvolution::Impl {
  dnnl::stream stream{cpu_engine()};
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_backward_data::primitive_desc bwd_data_pd;
  dnnl::convolution_backward_weights::primitive_desc bwd_weights_pd;
  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_data bwd_data;
  dnnl::convolution_backward_weights bwd_weights;
  Staged src, weights, bias, dst;             // forward
  Staged bd_diff_dst, bd_weights, bd_diff_src;  // backward data
  Staged bw_src, bw_diff_dst, bw_diff_weights;  // backward weights
  dnnl::memory bw_diff_bias;
  std::vector<float> dw_tmp, db_tmp;
};

DnnlConvolution::DnnlConvolution(const ConvGeometry& g) : g_(g), impl_(std::make_unique<Impl>()) {
  using dims = dnnl::memory::dims;
  auto& I = *impl_;
  const dims src{g.n, g.c, g.h, g.w}, dst{g.n, g.oc, g.oh, g.ow}, bias{g.oc};
  const dims wts = g.group == 1 ? dims{g.oc, g.c, g.kh, g.kw} : dims{g.group, g.oc / g.group, g.c / g.group, g.kh, g.kw};
  const tag wtag = g.group == 1 ? tag::oihw : tag::goihw;
  const dims strides{g.sh, g.sw}, dil{g.dh - 1, g.dw - 1}, pad_l{g.ph, g.pw};
  // Right padding so that the output size is Caffe's (floor) one.
  const dims pad_r{(g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1 - g.h - g.ph,
                   (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1 - g.w - g.pw};
  const dnnl::memory::desc src_any(src, dt::f32, tag::any), dst_any(dst, dt::f32, tag::any),
      wts_any(wts, dt::f32, tag::any), bias_md(bias, dt::f32, tag::x);
  const dnnl::memory::desc src_user(src, dt::f32, tag::nchw), dst_user(dst, dt::f32, tag::nchw),
      wts_user(wts, dt::f32, wtag);
  auto& eng = cpu_engine();
  const auto alg = dnnl::algorithm::convolution_direct;
  I.fwd_pd = g.bias ? dnnl::convolution_forward::primitive_desc(
                          dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, src_any, wts_any,
                                                          bias_md, dst_any, strides, dil, pad_l, pad_r),
                          eng)
                    : dnnl::convolution_forward::primitive_desc(
                          dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, src_any, wts_any,
                                                          dst_any, strides, dil, pad_l, pad_r),
                          eng);
  I.bwd_data_pd = dnnl::convolution_backward_data::primitive_desc(
      dnnl::convolution_backward_data::desc(alg, src_any, wts_any, dst_any, strides, dil, pad_l, pad_r), eng, I.fwd_pd);
  I.bwd_weights_pd =
      g.bias ? dnnl::convolution_backward_weights::primitive_desc(
                   dnnl::convolution_backward_weights::desc(alg, src_any, wts_any, bias_md, dst_any, strides, dil,
                                                            pad_l, pad_r),
                   eng, I.fwd_pd)
             : dnnl::convolution_backward_weights::primitive_desc(
                   dnnl::convolution_backward_weights::desc(alg, src_any, wts_any, dst_any, strides, dil, pad_l, pad_r),
                   eng, I.fwd_pd);
  I.fwd = dnnl::convolution_forward(I.fwd_pd);
  I.bwd_data = dnnl::convolution_backward_data(I.bwd_data_pd);
  I.bwd_weights = dnnl::convolution_backward_weights(I.bwd_weights_pd);

  I.src.init(src_user, I.fwd_pd.src_desc());
  I.weights.init(wts_user, I.fwd_pd.weights_desc());
  I.bias.init(bias_md, bias_md);
  I.dst.init(dst_user, I.fwd_pd.dst_desc());
  I.bd_diff_dst.init(dst_user, I.bwd_data_pd.diff_dst_desc());
  I.bd_weights.init(wts_user, I.bwd_data_pd.weights_desc());
  I.bd_diff_src.init(src_user, I.bwd_data_pd.diff_src_desc());
  I.bw_src.init(src_user, I.bwd_weights_pd.src_desc());
  I.bw_diff_dst.init(dst_user, I.bwd_weights_pd.diff_dst_desc());
  I.bw_diff_weights.init(wts_user, I.bwd_weights_pd.diff_weights_desc());
  if (g.bias) I.bw_diff_bias = dnnl::memory(bias_md, eng);
  I.dw_tmp.resize(g.oc * (g.c / g.group) * g.kh * g.kw);
}

DnnlConvolution::~DnnlConvolution() = default;

std::string DnnlConvolution::implementation() const { return impl_->fwd_pd.impl_info_str(); }

void DnnlConvolution::forward(const float* x, const float* w, const float* b, float* y) {
  auto& I = *impl_;
  auto& s = I.stream;
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, I.src.in(s, x)},
                                             {DNNL_ARG_WEIGHTS, I.weights.in(s, w)},
                                             {DNNL_ARG_DST, I.dst.out(y)}};
  if (g_.bias) args[DNNL_ARG_BIAS] = I.bias.in(s, b);
  I.fwd.execute(s, args);
  I.dst.flush(s);
  // The weight gradient needs the source in its own layout; keep it now.
  if (I.bw_src.reordered && I.src.reordered && I.bw_src.inner.get_desc() == I.src.inner.get_desc()) {
    I.bw_src.inner = I.src.inner;  // same layout: share the staged copy
  } else {
    I.bw_src.in(s, x);
  }
  s.wait();
}

void DnnlConvolution::backward(const float* dy, const float* w, float* dw, float* db, float* dx) {
  auto& I = *impl_;
  auto& s = I.stream;
  dnnl::memory& ddst_w = I.bw_diff_dst.in(s, dy);
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, I.bw_src.inner},
                                             {DNNL_ARG_DIFF_DST, ddst_w},
                                             {DNNL_ARG_DIFF_WEIGHTS, I.bw_diff_weights.out(I.dw_tmp.data())}};
  if (g_.bias) args[DNNL_ARG_DIFF_BIAS] = I.bw_diff_bias;
  I.bwd_weights.execute(s, args);
  I.bw_diff_weights.flush(s);
  if (dx) {
    // Both backward passes usually want dy in the same blocked layout: reorder it once.
    const bool same = I.bd_diff_dst.reordered && I.bw_diff_dst.reordered &&
                      I.bd_diff_dst.inner.get_desc() == I.bw_diff_dst.inner.get_desc();
    dnnl::memory& ddst_d = same ? ddst_w : I.bd_diff_dst.in(s, dy);
    I.bwd_data.execute(s, {{DNNL_ARG_DIFF_DST, ddst_d},
                           {DNNL_ARG_WEIGHTS, I.bd_weights.in(s, w)},
                           {DNNL_ARG_DIFF_SRC, I.bd_diff_src.out(dx)}});
    I.bd_diff_src.flush(s);
  }
  s.wait();
  const int64_t nw = static_cast<int64_t>(I.dw_tmp.size());
  for (int64_t i = 0; i < nw; ++i) dw[i] += I.dw_tmp[i];
  if (g_.bias) {
    const float* b = static_cast<const float*>(I.bw_diff_bias.get_data_handle());
    for (int64_t c = 0; c < g_.oc; ++c) db[c] += b[c];
  }
}

#else  // !COCO_WITH_DNNL

bool dnnl_available() { return false; }
struct DnnlConvolution::Impl {};
DnnlConvolution::DnnlConvolution(const ConvGeometry& g) : g_(g) {
  COCO_THROW("this coco build has no oneDNN (install libdnnl-dev and reconfigure)");
}
DnnlConvolution::~DnnlConvolution() = default;
std::string DnnlConvolution::implementation() const { return "none"; }
void DnnlConvolution::forward(const float*, const float*, const float*, float*) {}
void DnnlConvolution::backward(const float*, const float*, float*, float*, float*) {}

#endif

}  // namespace coco
