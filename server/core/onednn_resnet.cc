#include "server/core/onednn_resnet.h"

#include <stdexcept>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#ifdef DETR_HAVE_ONEDNN
#include <algorithm>
#include <list>
#include <mutex>
#include <unordered_map>

#include "server/core/onednn_support.h"
#endif

namespace detr {

#ifndef DETR_HAVE_ONEDNN

bool OneDnnResNet::Available() { return false; }
struct OneDnnResNet::Impl {};
OneDnnResNet::OneDnnResNet(const ConvParams&, const std::vector<ResidualBlockParams>&) {
  throw std::logic_error("detr-serve was built without oneDNN (libdnnl-dev)");
}
OneDnnResNet::~OneDnnResNet() = default;
at::Tensor OneDnnResNet::forward(const at::Tensor&) const {
  throw std::logic_error("detr-serve was built without oneDNN (libdnnl-dev)");
}

#else

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Type = memory::data_type;
using Args = std::unordered_map<int, memory>;

constexpr int kMaxPlans = 4;  // input shapes kept; a server with a fixed canvas uses one

memory::dims Dims(const at::Tensor& t) { return memory::dims(t.sizes().begin(), t.sizes().end()); }

memory::desc Any(const memory::dims& dims) { return memory::desc(dims, Type::f32, Tag::any); }

// Activations stay in the 16-channel blocked layout that oneDNN's Winograd
// convolutions require (left to choose, the 1x1 convolutions pick NHWC and
// the 3x3 ones then cannot use Winograd). Every ResNet width is a multiple of 16.
memory::desc Blocked(const memory::dims& dims) { return memory::desc(dims, Type::f32, Tag::nChw16c); }

int64_t OutputSize(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation) {
  return (in + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
}

// A convolution's own copy of its weights in plain layouts, and the weights
// reordered for each layout a live plan's primitive asked for (usually one;
// Winograd's layout can depend on the input shape). Plans own their reordered
// weights, so evicting a plan frees the layouts only it used.
struct Conv {
  ConvParams params;
  std::vector<std::pair<memory::desc, std::weak_ptr<const memory>>> reordered;  // guarded by Impl::mutex

  memory::dims WeightDims() const { return Dims(params.weight); }
  bool Winograd() const {
    return params.weight.size(2) == 3 && params.weight.size(3) == 3 && params.stride == 1 && params.dilation == 1;
  }
};

// One primitive of a plan with the memories it reads besides its input.
struct Step {
  dnnl::primitive primitive;
  memory::desc dst;
  std::shared_ptr<const memory> weights;  // null for pooling
  memory bias;                            // empty for pooling
  std::size_t scratchpad_bytes = 0;
};

struct BlockPlan {
  std::vector<Step> convs;
  std::optional<Step> downsample;
};

// Every primitive for one input shape, built once.
struct Plan {
  memory::dims input_dims;
  Step stem, pool;
  std::vector<BlockPlan> blocks;
  memory::dims output_dims;
  std::size_t scratchpad_bytes = 0;  // the largest any step needs
};

using onednn::UserScratchpad;

// Copies src into dst's layout, with its own scratchpad (see UserScratchpad).
void Reorder(dnnl::stream& stream, memory& src, memory& dst) {
  dnnl::reorder::primitive_desc pd(src, dst, UserScratchpad());
  const onednn::Scratchpad scratchpad(pd.scratchpad_desc());
  dnnl::reorder(pd).execute(stream,
                            Args{{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}, {DNNL_ARG_SCRATCHPAD, scratchpad.memory}});
}

// (B, C, H, W) float tensor with room for `desc`, from LibTorch's allocator,
// so that the caching allocator reuses it and memory scopes count it.
at::Tensor Buffer(const memory::desc& desc) {
  return at::empty({static_cast<int64_t>(desc.get_size() / sizeof(float))}, at::kFloat);
}

}  // namespace

struct OneDnnResNet::Impl {
  const dnnl::engine& engine = onednn::Engine();
  Conv stem;
  std::vector<std::pair<std::vector<Conv>, std::optional<Conv>>> blocks;
  std::mutex mutex;
  std::list<std::shared_ptr<const Plan>> plans;  // most recently used first; guarded by mutex

  std::shared_ptr<const memory> Weights(Conv& conv, const memory::desc& desc) {
    auto& cache = conv.reordered;
    cache.erase(std::remove_if(cache.begin(), cache.end(), [](const auto& entry) { return entry.second.expired(); }),
                cache.end());
    for (const auto& [layout, weights] : cache) {
      if (layout == desc) return weights.lock();
    }
    memory plain({conv.WeightDims(), Type::f32, Tag::oihw}, engine, conv.params.weight.data_ptr());
    auto reordered = std::make_shared<memory>(desc, engine);
    dnnl::stream stream(engine);
    Reorder(stream, plain, *reordered);
    stream.wait();
    cache.emplace_back(desc, reordered);
    return reordered;
  }

  // A convolution from `src` with ReLU; `shortcut_sum` also adds the
  // destination's previous contents (the shortcut) before the ReLU.
  Step MakeConv(Conv& conv, const memory::desc& src, const memory::dims& src_dims, bool shortcut_sum) {
    const auto& p = conv.params;
    const int64_t kh = p.weight.size(2), kw = p.weight.size(3);
    const memory::dims dst_dims = {src_dims[0], p.weight.size(0),
                                   OutputSize(src_dims[2], kh, p.stride, p.padding, p.dilation),
                                   OutputSize(src_dims[3], kw, p.stride, p.padding, p.dilation)};
    dnnl::post_ops ops;
    if (shortcut_sum) ops.append_sum(1.0f);
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    dnnl::primitive_attr attr = UserScratchpad();
    attr.set_post_ops(ops);
    const memory::desc bias_desc({p.bias.size(0)}, Type::f32, Tag::a);
    const memory::desc dst = Blocked(dst_dims);
    auto pd = [&](dnnl::algorithm algorithm) {
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, algorithm, src, Any(conv.WeightDims()),
                                        bias_desc, dst, {p.stride, p.stride}, {p.dilation - 1, p.dilation - 1},
                                        {p.padding, p.padding}, {p.padding, p.padding});
      return dnnl::convolution_forward::primitive_desc(d, attr, engine, /*allow_empty=*/true);
    };
    auto chosen = conv.Winograd() ? pd(dnnl::algorithm::convolution_winograd) : pd(dnnl::algorithm::convolution_direct);
    if (!chosen) chosen = pd(dnnl::algorithm::convolution_direct);
    if (!chosen) throw std::runtime_error("oneDNN has no convolution for this layer");
    return {dnnl::convolution_forward(chosen), chosen.dst_desc(), Weights(conv, chosen.weights_desc()),
            memory(bias_desc, engine, conv.params.bias.data_ptr()), chosen.scratchpad_desc().get_size()};
  }

  // The 1x1 downsample of the shortcut, writing in `dst_layout` (ReLU-free).
  Step MakeDownsample(Conv& conv, const memory::desc& src, const memory::desc& dst_layout) {
    const auto& p = conv.params;
    const memory::desc bias_desc({p.bias.size(0)}, Type::f32, Tag::a);
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src,
                                      Any(conv.WeightDims()), bias_desc, dst_layout, {p.stride, p.stride}, {0, 0},
                                      {p.padding, p.padding}, {p.padding, p.padding});
    dnnl::convolution_forward::primitive_desc pd(d, UserScratchpad(), engine);
    return {dnnl::convolution_forward(pd), pd.dst_desc(), Weights(conv, pd.weights_desc()),
            memory(bias_desc, engine, conv.params.bias.data_ptr()), pd.scratchpad_desc().get_size()};
  }

  std::shared_ptr<const Plan> BuildPlan(const memory::dims& input_dims) {
    auto plan = std::make_shared<Plan>();
    plan->input_dims = input_dims;
    const memory::desc input(input_dims, Type::f32, Tag::nchw);
    plan->stem = MakeConv(stem, input, input_dims, false);
    auto dims = plan->stem.dst.dims();
    const memory::dims pooled = {dims[0], dims[1], OutputSize(dims[2], 3, 2, 1, 1), OutputSize(dims[3], 3, 2, 1, 1)};
    dnnl::pooling_forward::desc pool(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max,
                                     plan->stem.dst, Blocked(pooled), {2, 2}, {3, 3}, {1, 1}, {1, 1});
    dnnl::pooling_forward::primitive_desc pool_pd(pool, UserScratchpad(), engine);
    plan->pool = {dnnl::pooling_forward(pool_pd), pool_pd.dst_desc(), {}, {}, pool_pd.scratchpad_desc().get_size()};
    memory::desc x = pool_pd.dst_desc();
    for (auto& [convs, downsample] : blocks) {
      BlockPlan block;
      memory::desc src = x;
      for (std::size_t i = 0; i + 1 < convs.size(); ++i) {
        block.convs.push_back(MakeConv(convs[i], src, src.dims(), false));
        src = block.convs.back().dst;
      }
      block.convs.push_back(MakeConv(convs.back(), src, src.dims(), true));
      const memory::desc out = block.convs.back().dst;
      if (downsample) {
        block.downsample = MakeDownsample(*downsample, x, out);
      } else {
        // The last convolution adds into the block's input in place.
        TORCH_CHECK(x == out, "OneDnnResNet: a block without downsample changes its layout");
      }
      plan->blocks.push_back(std::move(block));
      x = out;
    }
    plan->output_dims = x.dims();
    auto largest = [&](const Step& step) { plan->scratchpad_bytes = std::max(plan->scratchpad_bytes, step.scratchpad_bytes); };
    largest(plan->stem);
    largest(plan->pool);
    for (const auto& block : plan->blocks) {
      for (const auto& step : block.convs) largest(step);
      if (block.downsample) largest(*block.downsample);
    }
    return plan;
  }

  std::shared_ptr<const Plan> PlanFor(const memory::dims& input_dims) {
    std::lock_guard<std::mutex> lock(mutex);
    for (auto it = plans.begin(); it != plans.end(); ++it) {
      if ((*it)->input_dims == input_dims) {
        plans.splice(plans.begin(), plans, it);
        return plans.front();
      }
    }
    plans.push_front(BuildPlan(input_dims));
    if (static_cast<int>(plans.size()) > kMaxPlans) plans.pop_back();
    return plans.front();
  }
};

bool OneDnnResNet::Available() { return true; }

namespace {

Conv Copied(const ConvParams& params) {
  Conv conv{params, {}};
  conv.params.weight = params.weight.detach().to(at::kFloat).contiguous().clone();
  conv.params.bias = params.bias.detach().to(at::kFloat).contiguous().clone();
  return conv;
}

}  // namespace

OneDnnResNet::OneDnnResNet(const ConvParams& stem, const std::vector<ResidualBlockParams>& blocks)
    : impl_(std::make_unique<Impl>()) {
  impl_->stem = Copied(stem);
  for (const auto& block : blocks) {
    std::vector<Conv> convs;
    for (const auto& conv : block.convs) convs.push_back(Copied(conv));
    std::optional<Conv> downsample;
    if (block.downsample) downsample = Copied(*block.downsample);
    impl_->blocks.emplace_back(std::move(convs), std::move(downsample));
  }
}

OneDnnResNet::~OneDnnResNet() = default;

at::Tensor OneDnnResNet::forward(const at::Tensor& images) const {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == 3 && images.scalar_type() == at::kFloat,
              "OneDnnResNet expects (B, 3, H, W) float images");
  // oneDNN sizes its OpenMP teams by the calling thread's setting, which
  // LibTorch sets per thread on first use: make sure it has on this thread.
  at::get_num_threads();
  // The stem reads NCHW: oneDNN has no fast 3-channel convolution from NHWC
  // into the blocked layout (its reference one took 5 s).
  const at::Tensor input = images.contiguous();
  const auto plan = impl_->PlanFor(Dims(input));
  const auto& engine = impl_->engine;
  dnnl::stream stream(engine);
  // One scratchpad, as large as the largest step needs, for every step.
  const onednn::Scratchpad pass_scratchpad(memory::desc({static_cast<memory::dim>(plan->scratchpad_bytes)}, Type::u8, Tag::a));
  const memory& scratchpad = pass_scratchpad.memory;

  auto run_conv = [&](const Step& step, const memory& src, const memory& dst) {
    step.primitive.execute(stream, Args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, *step.weights},
                                        {DNNL_ARG_BIAS, step.bias}, {DNNL_ARG_DST, dst},
                                        {DNNL_ARG_SCRATCHPAD, scratchpad}});
  };
  const memory input_memory({plan->input_dims, Type::f32, Tag::nchw}, engine, input.data_ptr());
  at::Tensor stem_buffer = Buffer(plan->stem.dst);
  const memory stem_out(plan->stem.dst, engine, stem_buffer.data_ptr());
  run_conv(plan->stem, input_memory, stem_out);
  at::Tensor x_buffer = Buffer(plan->pool.dst);
  memory x(plan->pool.dst, engine, x_buffer.data_ptr());
  plan->pool.primitive.execute(stream, Args{{DNNL_ARG_SRC, stem_out}, {DNNL_ARG_DST, x}, {DNNL_ARG_SCRATCHPAD, scratchpad}});
  stem_buffer.reset();

  for (const auto& block : plan->blocks) {
    at::Tensor src_buffer;
    memory src = x;
    for (std::size_t i = 0; i + 1 < block.convs.size(); ++i) {
      at::Tensor out_buffer = Buffer(block.convs[i].dst);
      const memory out(block.convs[i].dst, engine, out_buffer.data_ptr());
      run_conv(block.convs[i], src, out);
      src_buffer = std::move(out_buffer);
      src = out;
    }
    // The last convolution adds into the shortcut's memory (sum post-op):
    // the block's input itself, or its downsampled copy.
    const auto& last = block.convs.back();
    at::Tensor shortcut_buffer = x_buffer;
    memory shortcut = x;
    if (block.downsample) {
      shortcut_buffer = Buffer(last.dst);
      shortcut = memory(last.dst, engine, shortcut_buffer.data_ptr());
      run_conv(*block.downsample, x, shortcut);
    }
    run_conv(last, src, shortcut);
    x_buffer = std::move(shortcut_buffer);
    x = shortcut;
  }
  auto features = at::empty(plan->output_dims, at::kFloat);
  memory output({plan->output_dims, Type::f32, Tag::nchw}, engine, features.data_ptr());
  Reorder(stream, x, output);
  stream.wait();
  return features;
}

#endif  // DETR_HAVE_ONEDNN

}  // namespace detr
