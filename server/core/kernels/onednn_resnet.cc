#include "server/core/kernels/onednn_resnet.h"

#include <stdexcept>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#ifdef DETR_HAVE_ONEDNN
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include "server/core/kernels/onednn_support.h"
#endif

namespace detr::core {

#ifndef DETR_HAVE_ONEDNN

bool OneDnnResNet::Available() { return false; }
struct OneDnnResNet::Impl {};
OneDnnResNet::OneDnnResNet(const ConvParams&, const std::vector<ResidualBlockParams>&, Options) {
  throw Unavailable("detr-serve was built without oneDNN (libdnnl-dev)");
}
OneDnnResNet::~OneDnnResNet() = default;
bool OneDnnResNet::NotReference(const std::string&) { return true; }
at::Tensor OneDnnResNet::forward(const at::Tensor&) const { throw Unavailable("built without oneDNN"); }
std::vector<std::string> OneDnnResNet::Implementations(at::IntArrayRef) const { return {}; }
std::string OneDnnResNet::Summary() const { return "built without oneDNN"; }
ModelMemory OneDnnResNet::Memory() const { return {}; }
bool OneDnnResNet::int8() const { return false; }
std::vector<std::string> OneDnnResNet::ActivationNames() const { return {}; }
OneDnnResNet::ActivationRanges OneDnnResNet::MeasureRanges(const at::Tensor&) const { return {}; }
std::string OneDnnResNet::WeightsFingerprint() const { return {}; }

#else

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Type = memory::data_type;
using Args = std::unordered_map<int, memory>;

// Batches run in chunks of BatchChunkSizes() (api/model_memory.h): a plan
// holds weights reordered for its input shape (Winograd's layouts depend on
// it: 80-180 MB for a ResNet-18, ~120 MB for a ResNet-50), so planning every
// batch size from 1 to 8 for every image shape made plans thrash and memory
// grow by hundreds of MB.
// The probe the constructor plans: small, but with every layer's geometry.
const memory::dims kProbeInput = {1, 3, 64, 64};

memory::dims Dims(const at::Tensor& t) { return memory::dims(t.sizes().begin(), t.sizes().end()); }

memory::desc Any(const memory::dims& dims, Type type = Type::f32) { return memory::desc(dims, type, Tag::any); }

// The same layout holding another data type of the same size (u8 <-> s8) or
// the layout to ask for in another type.
memory::desc As(const memory::desc& desc, Type type) {
  memory::desc retyped = desc;
  retyped.data.data_type = memory::convert_to_c(type);
  return retyped;
}

// An activation as a plan lays it out: its layout and data type, and the
// real value of one unit (1 for float32; the calibrated step for int8).
struct Planned {
  memory::desc desc;
  float scale = 1.0f;
};

int64_t OutputSize(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation) {
  return (in + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
}

// Weights in a layout a primitive asked for, in memory from LibTorch's
// allocator: a plan built during a request counts in its memory scope, and
// the allocator's figures include every plan's weights.
struct ReorderedWeights {
  at::Tensor buffer;
  memory handle;
};

// A convolution's own copy of its weights in plain layouts, and the weights
// reordered for each layout a live plan's primitive asked for (usually one;
// Winograd's layout can depend on the input shape). Plans own their reordered
// weights, so evicting a plan frees the layouts only it used.
struct Conv {
  std::string name;  // the checkpoint's: "conv1", "layer3.1.conv2"
  ConvParams params;
  // Int8 only (weight_scales empty for float32): the real value of one unit
  // of its input and output activations and of each output channel's s8
  // weights, the output's type, and the bias in the s32 accumulator's units.
  float in_scale = 1.0f, out_scale = 1.0f;
  Type out_type = Type::f32;
  std::vector<float> weight_scales;
  at::Tensor accumulator_bias;
  std::vector<std::pair<memory::desc, std::weak_ptr<const ReorderedWeights> > > reordered;  // guarded by Impl::mutex

  memory::dims WeightDims() const { return Dims(params.weight); }
  bool Int8() const { return !weight_scales.empty(); }
  Type in_type() const { return Int8() ? Type::u8 : Type::f32; }
  bool Winograd() const {
    return params.weight.size(2) == 3 && params.weight.size(3) == 3 && params.stride == 1 && params.dilation == 1;
  }
};

// One primitive of a plan: the layouts it reads and writes, and the memories
// it reads besides its input.
struct Step {
  dnnl::primitive primitive;
  std::string implementation;  // impl_info_str
  memory::desc src, dst;
  std::shared_ptr<const ReorderedWeights> weights;  // convolutions only
  memory bias;                                      // convolutions only
  std::size_t scratchpad_bytes = 0;
};

// A step whose input is first reordered when it arrives in another layout.
struct Stage {
  std::optional<Step> reorder;
  Step step;
};

struct BlockPlan {
  std::vector<Stage> convs;
  std::optional<Stage> downsample;
  std::optional<Step> shortcut_reorder;  // the shortcut into the last convolution's layout
};

// Every primitive for one input shape, built once.
struct Plan {
  memory::dims input_dims;
  Stage stem, pool;
  std::optional<Step> quantize;  // int8: the pooled float32 activation into u8
  std::vector<BlockPlan> blocks;
  Step output;                       // the last activation into NCHW
  std::size_t scratchpad_bytes = 0;  // the largest any step needs

  template <typename F>
  void ForEachStep(F f) const {
    auto stage = [&](const Stage& s) {
      if (s.reorder) f(*s.reorder);
      f(s.step);
    };
    stage(stem);
    stage(pool);
    if (quantize) f(*quantize);
    for (const auto& block : blocks) {
      for (std::size_t i = 0; i + 1 < block.convs.size(); ++i) stage(block.convs[i]);
      if (block.downsample) stage(*block.downsample);
      if (block.shortcut_reorder) f(*block.shortcut_reorder);
      stage(block.convs.back());
    }
    f(output);
  }
};

using onednn::UserScratchpad;

// Bytes with room for `desc`, from LibTorch's allocator, so that the caching
// allocator reuses them and memory scopes count them.
at::Tensor Buffer(const memory::desc& desc) { return at::empty({static_cast<int64_t>(desc.get_size())}, at::kByte); }

// The first implementation oneDNN offers for `pd` that `acceptable` takes;
// false (and `offered` extended) when there is none.
template <typename PrimitiveDesc>
bool FirstAcceptable(PrimitiveDesc& pd, const OneDnnResNet::Acceptable& acceptable, std::set<std::string>& offered) {
  if (!pd) return false;
  do {
    const std::string implementation = pd.impl_info_str();
    if (acceptable(implementation)) return true;
    offered.insert(implementation);
  } while (pd.next_impl());
  return false;
}

std::string Joined(const std::set<std::string>& names) {
  std::string text;
  for (const auto& name : names) text += (text.empty() ? "" : ", ") + name;
  return text.empty() ? "nothing" : text;
}

}  // namespace

// A residual block's convolutions, as ResidualBlockParams names them.
struct Block {
  std::string name;
  std::vector<Conv> convs;
  std::optional<Conv> downsample;
};

struct OneDnnResNet::Impl {
  const dnnl::engine& engine = onednn::Engine();
  OneDnnResNet::Acceptable acceptable;
  Conv stem;
  std::vector<Block> blocks;
  float pool_scale = 1.0f;  // int8: the real value of one unit of the quantised pooled activation
  std::size_t plan_capacity = 0;
  std::mutex mutex;
  std::list<std::shared_ptr<const Plan> > plans;  // most recently used first; guarded by mutex
  std::string summary;                            // the probe plan's implementations, for logs

  bool Int8() const { return !blocks.empty() && blocks.front().convs.front().Int8(); }

  template <typename F>
  void ForEachConv(F f) const {
    f(stem);
    for (const auto& block : blocks) {
      for (const auto& conv : block.convs) f(conv);
      if (block.downsample) f(*block.downsample);
    }
  }

  // Called with mutex held (from BuildPlan, under PlanFor's lock).
  std::shared_ptr<const ReorderedWeights> Weights(Conv& conv, const memory::desc& desc) {
    auto& cache = conv.reordered;
    cache.erase(std::remove_if(cache.begin(), cache.end(), [](const auto& entry) { return entry.second.expired(); }),
                cache.end());
    for (const auto& [layout, weights] : cache) {
      if (layout == desc) return weights.lock();
    }
    memory plain({conv.WeightDims(), Type::f32, Tag::oihw}, engine, conv.params.weight.data_ptr());
    auto reordered = std::make_shared<ReorderedWeights>();
    reordered->buffer = at::empty({static_cast<int64_t>(desc.get_size())}, at::kByte);
    reordered->handle = memory(desc, engine, reordered->buffer.data_ptr());
    // Int8: each output channel's weights divided by its scale (the reorder
    // rounds and saturates, and computes the compensation oneDNN's s8 layouts
    // carry).
    std::vector<float> per_channel;
    for (float scale : conv.weight_scales) per_channel.push_back(1.0f / scale);
    dnnl::stream stream(engine);
    Run(MakeReorder(plain.get_desc(), desc, per_channel), stream, plain, reordered->handle);
    stream.wait();
    cache.emplace_back(desc, reordered);
    return reordered;
  }

  // A reorder (layout and type) multiplying by `scales`: none = 1, one =
  // every value, several = one per output channel of a weight.
  Step MakeReorder(const memory::desc& from, const memory::desc& to, const std::vector<float>& scales = {}) const {
    dnnl::primitive_attr attr = UserScratchpad();
    if (!scales.empty()) attr.set_output_scales(scales.size() == 1 ? 0 : 1, scales);
    dnnl::reorder::primitive_desc pd(engine, from, engine, to, attr);
    return {dnnl::reorder(pd), pd.impl_info_str(), from, to, nullptr, {}, pd.scratchpad_desc().get_size()};
  }

  // A reorder from `from` into `to` (its layout, type and scale) unless they
  // are the same.
  std::optional<Step> ReorderIfNeeded(const Planned& from, const Planned& to) const {
    if (from.desc == to.desc && from.scale == to.scale) return std::nullopt;
    return MakeReorder(from.desc, to.desc, Rescale(from.scale, to.scale));
  }

  // The scales of a reorder from units of `from` into units of `to`.
  static std::vector<float> Rescale(float from, float to) {
    if (from == to) return {};
    return {from / to};
  }

  // Copies src into dst's layout (a reorder step), with its own scratchpad.
  static void Run(const Step& reorder, dnnl::stream& stream, const memory& src, const memory& dst) {
    const onednn::Scratchpad scratchpad(
        memory::desc({static_cast<memory::dim>(reorder.scratchpad_bytes)}, Type::u8, Tag::a));
    reorder.primitive.execute(stream,
                              Args{{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}, {DNNL_ARG_SCRATCHPAD, scratchpad.memory}});
  }

  // The output scales, residual sum and ReLU a convolution applies.
  static dnnl::primitive_attr ConvAttributes(const Conv& conv, const std::optional<Planned>& shortcut, bool relu) {
    dnnl::primitive_attr attr = UserScratchpad();
    dnnl::post_ops ops;
    if (conv.Int8()) {
      std::vector<float> scales;
      for (float weight_scale : conv.weight_scales) scales.push_back(conv.in_scale * weight_scale / conv.out_scale);
      attr.set_output_scales(1 << 1, scales);  // per output channel (dimension 1 of dst)
    }
    if (shortcut) {
      // The shortcut's units into the output's (1 for float32); a signed
      // downsample output is read as s8 from the output's u8 memory.
      const Type type = shortcut->desc.data_type();
      ops.append_sum(shortcut->scale / conv.out_scale, type == conv.out_type ? Type::undef : type);
    }
    if (relu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(ops);
    return attr;
  }

  // A convolution (+ shortcut sum) (+ ReLU) from the activation `src` into
  // `dst` (a layout; none: oneDNN's choice). Tries Winograd first where it
  // applies (float32), and the given layouts before leaving them to oneDNN
  // (which costs a reorder); accepts the first implementation `acceptable`
  // takes.
  Stage MakeConv(Conv& conv, const Planned& src, const std::optional<memory::desc>& dst,
                 const std::optional<Planned>& shortcut, bool relu) {
    const auto& p = conv.params;
    const auto src_dims = src.desc.dims();
    const int64_t kh = p.weight.size(2), kw = p.weight.size(3);
    const memory::dims dst_dims = {src_dims[0], p.weight.size(0),
                                   OutputSize(src_dims[2], kh, p.stride, p.padding, p.dilation),
                                   OutputSize(src_dims[3], kw, p.stride, p.padding, p.dilation)};
    const dnnl::primitive_attr attr = ConvAttributes(conv, shortcut, relu);
    const at::Tensor& bias = conv.Int8() ? conv.accumulator_bias : p.bias;
    const memory::desc bias_desc({bias.size(0)}, Type::f32, Tag::a);
    const Type weight_type = conv.Int8() ? Type::s8 : Type::f32;

    std::vector<dnnl::algorithm> algorithms;
    if (conv.Winograd() && !conv.Int8()) algorithms.push_back(dnnl::algorithm::convolution_winograd);
    algorithms.push_back(dnnl::algorithm::convolution_direct);
    const memory::desc src_as_read = As(src.desc, conv.in_type());
    std::vector<std::pair<memory::desc, memory::desc> > layouts;
    if (dst) layouts.emplace_back(src_as_read, As(*dst, conv.out_type));
    layouts.emplace_back(src_as_read, Any(dst_dims, conv.out_type));
    layouts.emplace_back(Any(src_dims, conv.in_type()), Any(dst_dims, conv.out_type));

    std::set<std::string> offered;
    for (const auto algorithm : algorithms) {
      for (const auto& [src_layout, dst_layout] : layouts) {
        dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, algorithm, src_layout,
                                          Any(conv.WeightDims(), weight_type), bias_desc, dst_layout,
                                          {p.stride, p.stride}, {p.dilation - 1, p.dilation - 1},
                                          {p.padding, p.padding}, {p.padding, p.padding});
        dnnl::convolution_forward::primitive_desc pd(d, attr, engine, /*allow_empty=*/true);
        if (!FirstAcceptable(pd, acceptable, offered)) continue;
        Step step{dnnl::convolution_forward(pd),
                  pd.impl_info_str(),
                  pd.src_desc(),
                  pd.dst_desc(),
                  Weights(conv, pd.weights_desc()),
                  memory(bias_desc, engine, bias.data_ptr()),
                  pd.scratchpad_desc().get_size()};
        return {ReorderIfNeeded(src, {step.src, conv.in_scale}), std::move(step)};
      }
    }
    throw Unavailable("oneDNN offers no acceptable " + std::string(conv.Int8() ? "int8 " : "") +
                      "implementation for the " + conv.name + " convolution (" + std::to_string(p.weight.size(1)) +
                      "->" + std::to_string(p.weight.size(0)) + ", " + std::to_string(kh) + "x" + std::to_string(kw) +
                      ", stride " + std::to_string(p.stride) + ") on " + onednn::EffectiveIsaName() +
                      "; it offered: " + Joined(offered));
  }

  Stage MakePool(const memory::desc& src) {
    const auto dims = src.dims();
    const memory::dims pooled = {dims[0], dims[1], OutputSize(dims[2], 3, 2, 1, 1), OutputSize(dims[3], 3, 2, 1, 1)};
    std::set<std::string> offered;
    for (const auto& src_layout : {src, Any(dims)}) {
      dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max, src_layout,
                                    Any(pooled), {2, 2}, {3, 3}, {1, 1}, {1, 1});
      dnnl::pooling_forward::primitive_desc pd(d, UserScratchpad(), engine, /*allow_empty=*/true);
      if (!FirstAcceptable(pd, acceptable, offered)) continue;
      Step step{dnnl::pooling_forward(pd),      pd.impl_info_str(), pd.src_desc(), pd.dst_desc(), nullptr, {},
                pd.scratchpad_desc().get_size()};
      return {ReorderIfNeeded({src}, {step.src}), std::move(step)};
    }
    throw Unavailable("oneDNN offers no acceptable max-pooling on " + onednn::EffectiveIsaName() +
                      "; it offered: " + Joined(offered));
  }

  BlockPlan PlanBlock(Block& block, const Planned& x) {
    BlockPlan plan;
    Planned src = x;
    auto& convs = block.convs;
    for (std::size_t i = 0; i + 1 < convs.size(); ++i) {
      plan.convs.push_back(MakeConv(convs[i], src, std::nullopt, std::nullopt, true));
      src = {plan.convs.back().step.dst, convs[i].out_scale};
    }
    // The last convolution adds into the shortcut's memory (sum post-op), so
    // it writes in the shortcut's layout where it can.
    Planned shortcut = x;
    if (block.downsample) shortcut = {As(x.desc, block.downsample->out_type), block.downsample->out_scale};
    plan.convs.push_back(MakeConv(
        convs.back(), src, block.downsample ? std::nullopt : std::optional<memory::desc>(x.desc), shortcut, true));
    const memory::desc out = plan.convs.back().step.dst;
    if (block.downsample) {
      plan.downsample = MakeConv(*block.downsample, x, out, std::nullopt, false);
      shortcut.desc = plan.downsample->step.dst;
    }
    plan.shortcut_reorder = ReorderIfNeeded(shortcut, {As(out, shortcut.desc.data_type()), shortcut.scale});
    return plan;
  }

  std::shared_ptr<const Plan> BuildPlan(const memory::dims& input_dims) {
    auto plan = std::make_shared<Plan>();
    plan->input_dims = input_dims;
    const memory::desc input(input_dims, Type::f32, Tag::nchw);
    plan->stem = MakeConv(stem, {input}, std::nullopt, std::nullopt, true);
    plan->pool = MakePool(plan->stem.step.dst);
    Planned x{plan->pool.step.dst};
    if (Int8()) {
      // Into the layout int8 convolutions read (channels last), once.
      const Planned quantised{memory::desc(x.desc.dims(), Type::u8, Tag::nhwc), pool_scale};
      plan->quantize = ReorderIfNeeded(x, quantised);
      x = quantised;
    }
    for (auto& block : blocks) {
      plan->blocks.push_back(PlanBlock(block, x));
      x = {plan->blocks.back().convs.back().step.dst, block.convs.back().out_scale};
    }
    plan->output = MakeReorder(x.desc, memory::desc(x.desc.dims(), Type::f32, Tag::nchw), Rescale(x.scale, 1.0f));
    plan->ForEachStep(
        [&](const Step& step) { plan->scratchpad_bytes = std::max(plan->scratchpad_bytes, step.scratchpad_bytes); });
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
    if (plans.size() > plan_capacity) plans.pop_back();
    CountPlans();
    return plans.front();
  }

  // The reordered weights of the live plans, each once (plans share the
  // layouts they have in common): counted when the plans change, so that
  // reading the figures (after every batch) costs a lock and a copy.
  void CountPlans() {  // with mutex held
    std::set<const ReorderedWeights*> counted;
    memory_use.plan_bytes = 0;
    for (const auto& plan : plans) {
      plan->ForEachStep([&](const Step& step) {
        if (step.weights && counted.insert(step.weights.get()).second) {
          memory_use.plan_bytes += step.weights->buffer.nbytes();
        }
      });
    }
    memory_use.plans = static_cast<int>(plans.size());
  }

  ModelMemory Memory() {
    std::lock_guard<std::mutex> lock(mutex);
    return memory_use;
  }

  ModelMemory memory_use;  // plain weights (set once), plans; guarded by mutex
};

namespace {

// One forward pass: a stream, a scratchpad as large as the largest step
// needs, and activation buffers from LibTorch's allocator (each alive as
// long as its Activation).
class Pass {
 public:
  struct Activation {
    at::Tensor buffer;  // undefined for the caller's input
    memory handle;      // oneDNN's view of it
  };

  Pass(const dnnl::engine& engine, std::size_t scratchpad_bytes)
      : engine_(engine),
        stream_(engine),
        scratchpad_(memory::desc({static_cast<memory::dim>(scratchpad_bytes)}, Type::u8, Tag::a)) {}

  Activation Fresh(const memory::desc& desc) {
    at::Tensor buffer = Buffer(desc);
    return {buffer, memory(desc, engine_, buffer.data_ptr())};
  }

  // `x` in the layout the stage's step reads.
  Activation Input(const Stage& stage, Activation x) {
    if (!stage.reorder) return x;
    return Reordered(*stage.reorder, x);
  }

  Activation Reordered(const Step& reorder, const Activation& x) {
    Activation out = Fresh(reorder.dst);
    reorder.primitive.execute(
        stream_, Args{{DNNL_ARG_FROM, x.handle}, {DNNL_ARG_TO, out.handle}, {DNNL_ARG_SCRATCHPAD, scratchpad_.memory}});
    return out;
  }

  // Runs a convolution or pooling step from `src` into `dst`.
  void Run(const Step& step, const Activation& src, const Activation& dst) {
    Args args{{DNNL_ARG_SRC, src.handle}, {DNNL_ARG_DST, dst.handle}, {DNNL_ARG_SCRATCHPAD, scratchpad_.memory}};
    if (step.weights) {
      args.emplace(DNNL_ARG_WEIGHTS, step.weights->handle);
      args.emplace(DNNL_ARG_BIAS, step.bias);
    }
    step.primitive.execute(stream_, args);
  }

  // A stage into a fresh activation.
  Activation Apply(const Stage& stage, Activation src) {
    src = Input(stage, std::move(src));
    Activation out = Fresh(stage.step.dst);
    Run(stage.step, src, out);
    return out;
  }

  dnnl::stream& stream() { return stream_; }

 private:
  const dnnl::engine& engine_;
  dnnl::stream stream_;
  onednn::Scratchpad scratchpad_;
};

}  // namespace

bool OneDnnResNet::Available() { return true; }

namespace {

Conv Copied(std::string name, const ConvParams& params) {
  Conv conv;
  conv.name = std::move(name);
  conv.params = params;
  conv.params.weight = params.weight.detach().to(at::kFloat).contiguous().clone();
  conv.params.bias = params.bias.detach().to(at::kFloat).contiguous().clone();
  return conv;
}

// A range's unit in u8 (255 steps) or s8 (127). A zero range (a channel
// never active on the calibration images) keeps a unit of 1: its values
// quantise to 0 either way.
float UnitOf(float range, Type type) {
  const float steps = type == Type::s8 ? 127.0f : 255.0f;
  return range > 0 ? range / steps : 1.0f;
}

// Quantises a convolution reading an activation of unit `in_scale` into one
// of range `out_range`: per-output-channel weight units, and the bias in the
// accumulator's units (oneDNN adds it before the output scales).
void QuantiseConv(Conv& conv, float in_scale, float out_range, Type out_type) {
  conv.in_scale = in_scale;
  conv.out_type = out_type;
  conv.out_scale = UnitOf(out_range, out_type);
  const auto ranges = conv.params.weight.abs().amax({1, 2, 3}).contiguous();
  conv.weight_scales.clear();
  for (const float range : at::ArrayRef<float>(ranges.data_ptr<float>(), ranges.numel())) {
    conv.weight_scales.push_back(UnitOf(range, Type::s8));
  }
  const auto weight_scales = at::tensor(conv.weight_scales);
  conv.accumulator_bias = (conv.params.bias / (weight_scales * in_scale)).contiguous();
}

// The ranges, checked: every activation named, each finite and > 0.
void CheckRanges(const OneDnnResNet::ActivationRanges& ranges, const std::vector<std::string>& names) {
  std::string missing, invalid;
  for (const auto& name : names) {
    const auto it = ranges.find(name);
    if (it == ranges.end()) {
      missing += (missing.empty() ? "" : ", ") + name;
    } else if (!std::isfinite(it->second) || it->second <= 0) {
      invalid += (invalid.empty() ? "" : ", ") + name + "=" + std::to_string(it->second);
    }
  }
  if (!missing.empty()) throw std::invalid_argument("int8 ranges missing for: " + missing);
  if (!invalid.empty()) throw std::invalid_argument("int8 ranges not finite and > 0: " + invalid);
}

}  // namespace

OneDnnResNet::OneDnnResNet(const ConvParams& stem, const std::vector<ResidualBlockParams>& blocks, Options options)
    : impl_(std::make_unique<Impl>()) {
  impl_->acceptable = std::move(options.acceptable);
  impl_->plan_capacity = static_cast<std::size_t>(std::max(options.plan_capacity, 1));
  impl_->stem = Copied("conv1", stem);
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    Block block{blocks[b].name.empty() ? "block" + std::to_string(b + 1) : blocks[b].name, {}, std::nullopt};
    for (std::size_t c = 0; c < blocks[b].convs.size(); ++c) {
      block.convs.push_back(Copied(block.name + ".conv" + std::to_string(c + 1), blocks[b].convs[c]));
    }
    if (blocks[b].downsample) block.downsample = Copied(block.name + ".downsample.0", *blocks[b].downsample);
    impl_->blocks.push_back(std::move(block));
  }
  if (options.int8) Quantise(*options.int8);
  // The probe's plan proves every layer has an acceptable implementation
  // here, and names them for the logs; it is not kept: its weights, reordered
  // for its shape (Winograd's layouts are shape-specific, 80-180 MB for a
  // ResNet-18), would serve no request.
  std::map<std::string, int> counts;
  for (const auto& name : Implementations(kProbeInput)) ++counts[name];
  impl_->summary = onednn::EffectiveIsaName() + (int8() ? " int8:" : ":");
  for (const auto& [name, count] : counts) impl_->summary += " " + std::to_string(count) + "x " + name + ",";
  impl_->summary.pop_back();
  impl_->plans.clear();
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->CountPlans();
  impl_->memory_use.plan_capacity = static_cast<int>(impl_->plan_capacity);
  impl_->ForEachConv([&](const Conv& conv) {
    impl_->memory_use.weight_bytes += conv.params.weight.nbytes() + conv.params.bias.nbytes();
    if (conv.Int8()) impl_->memory_use.weight_bytes += conv.accumulator_bias.nbytes();
  });
}

void OneDnnResNet::Quantise(const ActivationRanges& ranges) {
  CheckRanges(ranges, ActivationNames());
  impl_->pool_scale = UnitOf(ranges.at("maxpool"), Type::u8);
  float in_scale = impl_->pool_scale;
  for (auto& block : impl_->blocks) {
    const float block_in = in_scale;
    for (std::size_t c = 0; c + 1 < block.convs.size(); ++c) {
      QuantiseConv(block.convs[c], in_scale, ranges.at(block.convs[c].name), Type::u8);
      in_scale = block.convs[c].out_scale;
    }
    QuantiseConv(block.convs.back(), in_scale, ranges.at(block.name), Type::u8);
    if (block.downsample) QuantiseConv(*block.downsample, block_in, ranges.at(block.downsample->name), Type::s8);
    in_scale = block.convs.back().out_scale;
  }
}

OneDnnResNet::~OneDnnResNet() = default;

bool OneDnnResNet::int8() const { return impl_->Int8(); }

std::vector<std::string> OneDnnResNet::ActivationNames() const {
  std::vector<std::string> names = {"maxpool"};
  for (const auto& block : impl_->blocks) {
    for (std::size_t c = 0; c + 1 < block.convs.size(); ++c) names.push_back(block.convs[c].name);
    if (block.downsample) names.push_back(block.downsample->name);
    names.push_back(block.name);
  }
  return names;
}

OneDnnResNet::ActivationRanges OneDnnResNet::MeasureRanges(const at::Tensor& images) const {
  if (int8()) throw std::logic_error("MeasureRanges needs the float32 body");
  ActivationRanges ranges;
  const Observer observe = [&](const std::string& name, const at::Tensor& values) {
    auto& range = ranges[name];
    range = std::max(range, values.abs().max().item<float>());
  };
  for (int64_t i = 0; i < images.size(0); ++i) ForwardChunk(images.narrow(0, i, 1), &observe);
  return ranges;
}

std::string OneDnnResNet::WeightsFingerprint() const {
  // Weights only: folding computes them by one correctly rounded multiply
  // (the same bits on every instruction set); biases may differ in the last
  // bit where a vectorised fold fuses its multiply-add.
  std::uint64_t hash = 14695981039346656037ull;
  impl_->ForEachConv([&](const Conv& conv) {
    const auto* bytes = static_cast<const unsigned char*>(conv.params.weight.data_ptr());
    for (std::size_t i = 0; i < conv.params.weight.nbytes(); ++i) hash = (hash ^ bytes[i]) * 1099511628211ull;
  });
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

bool OneDnnResNet::NotReference(const std::string& implementation) { return implementation.rfind("ref", 0) != 0; }

std::vector<std::string> OneDnnResNet::Implementations(at::IntArrayRef input_sizes) const {
  const auto plan = impl_->PlanFor(memory::dims(input_sizes.begin(), input_sizes.end()));
  std::vector<std::string> names;
  plan->ForEachStep([&](const Step& step) { names.push_back(step.implementation); });
  return names;
}

std::string OneDnnResNet::Summary() const { return impl_->summary; }

ModelMemory OneDnnResNet::Memory() const { return impl_->Memory(); }

at::Tensor OneDnnResNet::forward(const at::Tensor& images) const {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == 3 && images.scalar_type() == at::kFloat,
              "OneDnnResNet expects (B, 3, H, W) float images");
  const int64_t batch = images.size(0);
  const auto& chunks = BatchChunkSizes();
  const auto largest_chunk = [&](int64_t images_left) {
    return *std::find_if(chunks.begin(), chunks.end(),
                         [&](int size) { return size <= std::max<int64_t>(images_left, 1); });
  };
  if (largest_chunk(batch) == batch || batch == 0) return ForwardChunk(images);
  std::vector<at::Tensor> features;
  for (int64_t start = 0; start < batch;) {
    const int64_t size = largest_chunk(batch - start);
    features.push_back(ForwardChunk(images.narrow(0, start, size)));
    start += size;
  }
  return at::cat(features);
}

at::Tensor OneDnnResNet::ForwardChunk(const at::Tensor& images, const Observer* observe) const {
  // oneDNN sizes its OpenMP teams by the calling thread's setting, which
  // LibTorch sets per thread on first use: make sure it has on this thread.
  at::get_num_threads();
  // The stem reads NCHW: oneDNN has no fast 3-channel convolution from NHWC
  // into a blocked layout (its reference one took 5 s).
  const at::Tensor input = images.contiguous();
  const auto plan = impl_->PlanFor(Dims(input));
  Pass pass(impl_->engine, plan->scratchpad_bytes);
  const auto seen = [&](const std::string& name, const Pass::Activation& activation) {
    if (observe) (*observe)(name, activation.buffer.view(at::kFloat));
  };
  Pass::Activation x{at::Tensor(), memory({plan->input_dims, Type::f32, Tag::nchw}, impl_->engine, input.data_ptr())};
  x = pass.Apply(plan->stem, std::move(x));
  x = pass.Apply(plan->pool, std::move(x));
  seen("maxpool", x);
  if (plan->quantize) x = pass.Reordered(*plan->quantize, x);
  for (std::size_t b = 0; b < plan->blocks.size(); ++b) {
    const auto& block = plan->blocks[b];
    const auto& names = impl_->blocks[b];
    Pass::Activation src = x;
    for (std::size_t i = 0; i + 1 < block.convs.size(); ++i) {
      src = pass.Apply(block.convs[i], std::move(src));
      seen(names.convs[i].name, src);
    }
    // The last convolution adds into the shortcut's memory (sum post-op):
    // the block's input itself, or its downsampled copy.
    Pass::Activation shortcut = block.downsample ? pass.Apply(*block.downsample, x) : x;
    if (block.downsample) seen(names.downsample->name, shortcut);
    if (block.shortcut_reorder) shortcut = pass.Reordered(*block.shortcut_reorder, shortcut);
    const Stage& last = block.convs.back();
    src = pass.Input(last, std::move(src));
    x = Pass::Activation();  // no longer needed unless it is the shortcut
    pass.Run(last.step, src, shortcut);
    x = std::move(shortcut);
    seen(names.name, x);
  }
  auto features = at::empty(plan->output.dst.dims(), at::kFloat);
  pass.Run(plan->output, x, {features, memory(plan->output.dst, impl_->engine, features.data_ptr())});
  pass.stream().wait();
  return features;
}

#endif  // DETR_HAVE_ONEDNN

}  // namespace detr::core
