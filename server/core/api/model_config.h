// The architecture of a DETR model and the attention type of each site.
//
// Keys follow the official `main.py` arguments (backbone, dilation, hidden_dim,
// ...) so that a config written for the official code reads here unchanged.
// Attention is configured per site as docs/optimization-attention.md specifies.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace detr::core {

/// kLinear and kPooling are the reviewers' cheap baselines (issue 16):
/// kernelised linear attention (elu + 1 features, Q, K and V projections) and
/// mean pooling of the values (no Q or K).
enum class AttentionType { kSoftmax, kSoftmaxIdentityQk, kOptimization, kLinear, kPooling };
enum class Normalizer { kReluPower, kAbsPower, kSoftmax };
/// The three places attention sits in DETR.
enum class AttentionSite { kEncoderSelf, kDecoderSelf, kDecoderCross };

const char* ToString(AttentionType type);
const char* ToString(Normalizer normalizer);
const char* ToString(AttentionSite site);
/// The site named "encoder.self", "decoder.self" or "decoder.cross".
std::optional<AttentionSite> ParseSite(const std::string& name);

/// Type and options of one attention site. Options other than `type` only
/// matter for `optimization`; their defaults are the spec's.
struct AttentionOptions {
  AttentionType type = AttentionType::kSoftmax;
  int iterations = 5;    // K, unrolled ADMM steps
  double lambda = 0.05;  // sparsity weight
  double rho = 1.0;      // ADMM penalty
  double power = 5;      // p of the normaliser
  Normalizer normalizer = Normalizer::kReluPower;
  bool normalize_inputs = true;
  std::optional<bool> exclude_self;  // unset: true for self-attention sites
  int top_k = 0;                     // 0 = off
  int random_tokens = 0;
  std::uint64_t random_seed = 0;
  /// "train": training draws new random directions at every step, from a
  /// stream seeded like the fixed draw (a regulariser, as the paper means
  /// them); inference always uses the fixed, reproducible draw. "never":
  /// the fixed draw everywhere (the default).
  bool random_tokens_resample_train = false;
  /// Inference only: query rows solved at once per head, bounding the
  /// coefficient state to query_chunk x m (ours). 0 = all rows at once.
  int query_chunk = 128;
  /// `pooling` at encoder.self only: each token takes the mean of the
  /// unpadded tokens in the window x window square of the feature map around
  /// it (odd; PoolFormer's token mixer, without its subtraction). 0 = every
  /// token (global mean pooling).
  int window = 0;
  /// optimization and softmax_identity_qk only, a deviation from the spec
  /// (ours; docs/optimization-attention.md#position-projection): learned
  /// linear maps of the positional term, one for the queries' and one for the
  /// keys' (pos_proj_weight, 2d x d, initialised to the identity), applied
  /// before the positional term is added. The content stays unprojected.
  bool position_projection = false;
  /// optimization only, a deviation from the spec (ours; the ablation of
  /// what the dropped projections cost): the site keeps softmax's query and
  /// key projections (in_proj_weight/in_proj_bias hold the q, k and v rows,
  /// as softmax's do) and solves the LASSO on the projected queries and keys.
  bool query_key_projection = false;

  /// `exclude_self` resolved for `site`.
  bool ExcludesSelf(AttentionSite site) const;
};

struct ModelConfig {
  std::string backbone = "resnet50";  // resnet18, resnet34, resnet50, resnet101
  bool dilation = false;              // DC5: dilate the last stage instead of striding
  int hidden_dim = 256;
  int nheads = 8;
  int enc_layers = 6;
  int dec_layers = 6;
  int dim_feedforward = 2048;
  int num_queries = 100;
  int num_classes = 91;  // the head predicts num_classes + 1 ("no object")
  std::string position_embedding = "sine";
  bool normalize_before = false;  // pre-norm transformer layers
  /// The official training's dropout in the transformer: after each
  /// attention and feed-forward block, inside the feed-forward block, and on
  /// softmax sites' attention weights. Only while training with gradients;
  /// inference (eval mode, or no gradients) never drops.
  double dropout = 0.1;
  /// Name of each class id (ours; the official code keeps names outside the
  /// model). Empty: COCO's names when num_classes is 91, else "class N".
  std::vector<std::string> class_names;

  AttentionOptions encoder_self;
  AttentionOptions decoder_self;
  AttentionOptions decoder_cross;

  /// A name for every class id 0..num_classes-1 (see class_names).
  std::vector<std::string> ClassNames() const;

  const AttentionOptions& attention(AttentionSite site) const;
  AttentionOptions& attention(AttentionSite site);

  /// Reads a JSON config and validates it; throws std::invalid_argument
  /// naming the source and the field.
  static ModelConfig FromJson(const nlohmann::json& document, const std::string& source = "config");
  static ModelConfig FromJsonText(const std::string& text, const std::string& source = "config");
  static ModelConfig FromJsonFile(const std::string& path);
  /// The config as JSON text (official keys plus "attention").
  std::string ToJsonText() const;
  /// Throws std::invalid_argument if the combination cannot be built.
  void Validate() const;
};

}  // namespace detr::core
