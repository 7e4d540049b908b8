#include "server/core/kernels/onednn_resnet.h"

#include <stdexcept>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#ifdef DETR_HAVE_ONEDNN
#include <algorithm>
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
OneDnnResNet::OneDnnResNet(const ConvParams&, const std::vector<ResidualBlockParams>&, Acceptable, int) {
  throw Unavailable("detr-serve was built without oneDNN (libdnnl-dev)");
}
OneDnnResNet::~OneDnnResNet() = default;
bool OneDnnResNet::NotReference(const std::string&) { return true; }
at::Tensor OneDnnResNet::forward(const at::Tensor&) const { throw Unavailable("built without oneDNN"); }
std::vector<std::string> OneDnnResNet::Implementations(at::IntArrayRef) const { return {}; }
std::string OneDnnResNet::Summary() const { return "built without oneDNN"; }
ModelMemory OneDnnResNet::Memory() const { return {}; }

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

memory::desc Any(const memory::dims& dims) { return memory::desc(dims, Type::f32, Tag::any); }

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
  std::string name;  // for messages: "stem", "block 3 convolution 2"
  ConvParams params;
  std::vector<std::pair<memory::desc, std::weak_ptr<const ReorderedWeights> > > reordered;  // guarded by Impl::mutex

  memory::dims WeightDims() const { return Dims(params.weight); }
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

// (B, C, H, W) float tensor with room for `desc`, from LibTorch's allocator,
// so that the caching allocator reuses it and memory scopes count it.
at::Tensor Buffer(const memory::desc& desc) {
  return at::empty({static_cast<int64_t>(desc.get_size() / sizeof(float))}, at::kFloat);
}

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

struct OneDnnResNet::Impl {
  const dnnl::engine& engine = onednn::Engine();
  OneDnnResNet::Acceptable acceptable;
  Conv stem;
  std::vector<std::pair<std::vector<Conv>, std::optional<Conv> > > blocks;
  std::size_t plan_capacity = 0;
  std::mutex mutex;
  std::list<std::shared_ptr<const Plan> > plans;  // most recently used first; guarded by mutex
  std::string summary;                            // the probe plan's implementations, for logs

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
    dnnl::stream stream(engine);
    Run(MakeReorder(plain.get_desc(), desc), stream, plain, reordered->handle);
    stream.wait();
    cache.emplace_back(desc, reordered);
    return reordered;
  }

  Step MakeReorder(const memory::desc& from, const memory::desc& to) const {
    dnnl::reorder::primitive_desc pd(engine, from, engine, to, UserScratchpad());
    return {dnnl::reorder(pd), pd.impl_info_str(), from, to, nullptr, {}, pd.scratchpad_desc().get_size()};
  }

  // `step` (a reorder from `from`) when the layouts differ.
  std::optional<Step> ReorderIfNeeded(const memory::desc& from, const memory::desc& to) const {
    if (from == to) return std::nullopt;
    return MakeReorder(from, to);
  }

  // Copies src into dst's layout (a reorder step), with its own scratchpad.
  static void Run(const Step& reorder, dnnl::stream& stream, const memory& src, const memory& dst) {
    const onednn::Scratchpad scratchpad(
        memory::desc({static_cast<memory::dim>(reorder.scratchpad_bytes)}, Type::u8, Tag::a));
    reorder.primitive.execute(stream,
                              Args{{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}, {DNNL_ARG_SCRATCHPAD, scratchpad.memory}});
  }

  // A convolution (+ shortcut sum) (+ ReLU) from an input in layout `src`
  // into `dst` (a layout; none: oneDNN's choice). Tries Winograd first where it applies,
  // and the given layouts before leaving them to oneDNN (which costs a
  // reorder); accepts the first implementation `acceptable` takes.
  Stage MakeConv(Conv& conv, const memory::desc& src, const std::optional<memory::desc>& dst, bool shortcut_sum,
                 bool relu) {
    const auto& p = conv.params;
    const auto src_dims = src.dims();
    const int64_t kh = p.weight.size(2), kw = p.weight.size(3);
    const memory::dims dst_dims = {src_dims[0], p.weight.size(0),
                                   OutputSize(src_dims[2], kh, p.stride, p.padding, p.dilation),
                                   OutputSize(src_dims[3], kw, p.stride, p.padding, p.dilation)};
    dnnl::post_ops ops;
    if (shortcut_sum) ops.append_sum(1.0f);
    if (relu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    dnnl::primitive_attr attr = UserScratchpad();
    attr.set_post_ops(ops);
    const memory::desc bias_desc({p.bias.size(0)}, Type::f32, Tag::a);

    std::vector<dnnl::algorithm> algorithms;
    if (conv.Winograd()) algorithms.push_back(dnnl::algorithm::convolution_winograd);
    algorithms.push_back(dnnl::algorithm::convolution_direct);
    std::vector<std::pair<memory::desc, memory::desc> > layouts;
    if (dst) layouts.emplace_back(src, *dst);
    layouts.emplace_back(src, Any(dst_dims));
    layouts.emplace_back(Any(src_dims), Any(dst_dims));

    std::set<std::string> offered;
    for (const auto algorithm : algorithms) {
      for (const auto& [src_layout, dst_layout] : layouts) {
        dnnl::convolution_forward::desc d(
            dnnl::prop_kind::forward_inference, algorithm, src_layout, Any(conv.WeightDims()), bias_desc, dst_layout,
            {p.stride, p.stride}, {p.dilation - 1, p.dilation - 1}, {p.padding, p.padding}, {p.padding, p.padding});
        dnnl::convolution_forward::primitive_desc pd(d, attr, engine, /*allow_empty=*/true);
        if (!FirstAcceptable(pd, acceptable, offered)) continue;
        Step step{dnnl::convolution_forward(pd),
                  pd.impl_info_str(),
                  pd.src_desc(),
                  pd.dst_desc(),
                  Weights(conv, pd.weights_desc()),
                  memory(bias_desc, engine, conv.params.bias.data_ptr()),
                  pd.scratchpad_desc().get_size()};
        return {ReorderIfNeeded(src, step.src), std::move(step)};
      }
    }
    throw Unavailable("oneDNN offers no acceptable implementation for the " + conv.name + " convolution (" +
                      std::to_string(p.weight.size(1)) + "->" + std::to_string(p.weight.size(0)) + ", " +
                      std::to_string(kh) + "x" + std::to_string(kw) + ", stride " + std::to_string(p.stride) + ") on " +
                      onednn::EffectiveIsaName() + "; it offered: " + Joined(offered));
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
      return {ReorderIfNeeded(src, step.src), std::move(step)};
    }
    throw Unavailable("oneDNN offers no acceptable max-pooling on " + onednn::EffectiveIsaName() +
                      "; it offered: " + Joined(offered));
  }

  std::shared_ptr<const Plan> BuildPlan(const memory::dims& input_dims) {
    auto plan = std::make_shared<Plan>();
    plan->input_dims = input_dims;
    const memory::desc input(input_dims, Type::f32, Tag::nchw);
    plan->stem = MakeConv(stem, input, std::nullopt, false, true);
    plan->pool = MakePool(plan->stem.step.dst);
    memory::desc x = plan->pool.step.dst;
    for (auto& [convs, downsample] : blocks) {
      BlockPlan block;
      memory::desc src = x;
      for (std::size_t i = 0; i + 1 < convs.size(); ++i) {
        block.convs.push_back(MakeConv(convs[i], src, std::nullopt, false, true));
        src = block.convs.back().step.dst;
      }
      // The last convolution adds into the shortcut's memory (sum post-op),
      // so it writes in the shortcut's layout where it can.
      block.convs.push_back(
          MakeConv(convs.back(), src, downsample ? std::nullopt : std::optional<memory::desc>(x), true, true));
      const memory::desc out = block.convs.back().step.dst;
      memory::desc shortcut = x;
      if (downsample) {
        block.downsample = MakeConv(*downsample, x, out, false, false);
        shortcut = block.downsample->step.dst;
      }
      block.shortcut_reorder = ReorderIfNeeded(shortcut, out);
      plan->blocks.push_back(std::move(block));
      x = out;
    }
    plan->output = MakeReorder(x, memory::desc(x.dims(), Type::f32, Tag::nchw));
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
  Conv conv{std::move(name), params, {}};
  conv.params.weight = params.weight.detach().to(at::kFloat).contiguous().clone();
  conv.params.bias = params.bias.detach().to(at::kFloat).contiguous().clone();
  return conv;
}

}  // namespace

OneDnnResNet::OneDnnResNet(const ConvParams& stem, const std::vector<ResidualBlockParams>& blocks,
                           Acceptable acceptable, int plan_capacity)
    : impl_(std::make_unique<Impl>()) {
  impl_->acceptable = std::move(acceptable);
  impl_->plan_capacity = static_cast<std::size_t>(std::max(plan_capacity, 1));
  impl_->stem = Copied("stem", stem);
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    const std::string block = "block " + std::to_string(b + 1) + " ";
    std::vector<Conv> convs;
    for (std::size_t c = 0; c < blocks[b].convs.size(); ++c) {
      convs.push_back(Copied(block + "convolution " + std::to_string(c + 1), blocks[b].convs[c]));
    }
    std::optional<Conv> downsample;
    if (blocks[b].downsample) downsample = Copied(block + "downsample", *blocks[b].downsample);
    impl_->blocks.emplace_back(std::move(convs), std::move(downsample));
  }
  // The probe's plan proves every layer has an acceptable implementation
  // here, and names them for the logs; it is not kept: its weights, reordered
  // for its shape (Winograd's layouts are shape-specific, 80-180 MB for a
  // ResNet-18), would serve no request.
  std::map<std::string, int> counts;
  for (const auto& name : Implementations(kProbeInput)) ++counts[name];
  impl_->summary = onednn::EffectiveIsaName() + ":";
  for (const auto& [name, count] : counts) impl_->summary += " " + std::to_string(count) + "x " + name + ",";
  impl_->summary.pop_back();
  impl_->plans.clear();
  const auto plain = [&](const Conv& conv) { return conv.params.weight.nbytes() + conv.params.bias.nbytes(); };
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->CountPlans();
  impl_->memory_use.plan_capacity = static_cast<int>(impl_->plan_capacity);
  impl_->memory_use.weight_bytes = plain(impl_->stem);
  for (const auto& [convs, downsample] : impl_->blocks) {
    for (const auto& conv : convs) impl_->memory_use.weight_bytes += plain(conv);
    if (downsample) impl_->memory_use.weight_bytes += plain(*downsample);
  }
}

OneDnnResNet::~OneDnnResNet() = default;

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

at::Tensor OneDnnResNet::ForwardChunk(const at::Tensor& images) const {
  // oneDNN sizes its OpenMP teams by the calling thread's setting, which
  // LibTorch sets per thread on first use: make sure it has on this thread.
  at::get_num_threads();
  // The stem reads NCHW: oneDNN has no fast 3-channel convolution from NHWC
  // into a blocked layout (its reference one took 5 s).
  const at::Tensor input = images.contiguous();
  const auto plan = impl_->PlanFor(Dims(input));
  Pass pass(impl_->engine, plan->scratchpad_bytes);
  Pass::Activation x{at::Tensor(), memory({plan->input_dims, Type::f32, Tag::nchw}, impl_->engine, input.data_ptr())};
  x = pass.Apply(plan->stem, std::move(x));
  x = pass.Apply(plan->pool, std::move(x));
  for (const auto& block : plan->blocks) {
    Pass::Activation src = x;
    for (std::size_t i = 0; i + 1 < block.convs.size(); ++i) src = pass.Apply(block.convs[i], std::move(src));
    // The last convolution adds into the shortcut's memory (sum post-op):
    // the block's input itself, or its downsampled copy.
    Pass::Activation shortcut = block.downsample ? pass.Apply(*block.downsample, x) : x;
    if (block.shortcut_reorder) shortcut = pass.Reordered(*block.shortcut_reorder, shortcut);
    const Stage& last = block.convs.back();
    src = pass.Input(last, std::move(src));
    x = Pass::Activation();  // no longer needed unless it is the shortcut
    pass.Run(last.step, src, shortcut);
    x = std::move(shortcut);
  }
  auto features = at::empty(plan->output.dst.dims(), at::kFloat);
  pass.Run(plan->output, x, {features, memory(plan->output.dst, impl_->engine, features.data_ptr())});
  pass.stream().wait();
  return features;
}

#endif  // DETR_HAVE_ONEDNN

}  // namespace detr::core
