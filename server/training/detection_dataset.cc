#include "server/training/detection_dataset.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <tuple>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "server/core/model/input_tensors.h"
#include "server/image/decode.h"
#include "server/image/preprocess.h"

namespace detr::training {

DetectionDataset::DetectionDataset(const std::string& annotations, const std::string& image_dir) {
  std::ifstream in(annotations);
  if (!in) throw std::runtime_error(annotations + ": cannot open");
  const auto json = nlohmann::json::parse(in);
  for (const auto& c : json.value("categories", nlohmann::json::array())) {
    categories_.emplace_back(c.at("id").get<int>(), c.at("name").get<std::string>());
  }
  std::map<int, std::vector<const nlohmann::json*>> by_image;
  for (const auto& a : json.at("annotations")) by_image[a.at("image_id").get<int>()].push_back(&a);
  for (const auto& image : json.at("images")) {
    const auto path = (std::filesystem::path(image_dir) / image.at("file_name").get<std::string>()).string();
    auto read = image::ReadImage(path);
    if (!read.ok()) throw std::runtime_error(std::string(read.status().message()));  // the trainer's error style
    const cv::Mat& rgb = images_.emplace_back(std::move(*read));
    std::vector<int64_t> labels;
    std::vector<float> boxes;
    const float w = static_cast<float>(rgb.cols), h = static_cast<float>(rgb.rows);
    for (const auto* a : by_image[image.at("id").get<int>()]) {
      const auto& b = a->at("bbox");
      const float x = b.at(0).get<float>(), y = b.at(1).get<float>(), bw = b.at(2).get<float>(),
                  bh = b.at(3).get<float>();
      labels.push_back(a->at("category_id").get<int64_t>());
      max_category_id_ = std::max<int>(max_category_id_, static_cast<int>(labels.back()));
      boxes.insert(boxes.end(), {(x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h});
    }
    targets_.push_back({at::tensor(labels, at::kLong).view({-1}),
                        at::tensor(boxes, at::kFloat).view({static_cast<int64_t>(labels.size()), 4})});
  }
  if (images_.empty()) throw std::runtime_error(annotations + ": no images");
}

std::vector<std::string> DetectionDataset::CategoryNames(int num_classes) const {
  std::vector<std::string> names(static_cast<size_t>(num_classes), "N/A");
  for (const auto& [id, name] : categories_) {
    if (id >= 0 && id < num_classes) names[static_cast<size_t>(id)] = name;
  }
  return names;
}

std::vector<std::vector<int64_t>> DetectionDataset::SizeGroups() const {
  std::map<std::pair<int, int>, std::vector<int64_t>> by_size;
  for (std::size_t i = 0; i < images_.size(); ++i) {
    by_size[{images_[i].cols, images_[i].rows}].push_back(static_cast<int64_t>(i));
  }
  std::vector<std::vector<int64_t>> groups;
  for (auto& [size, indices] : by_size) groups.push_back(std::move(indices));
  return groups;
}

namespace {

std::discrete_distribution<std::size_t> ProportionalToSize(const std::vector<std::vector<int64_t>>& groups) {
  std::vector<double> weights;
  for (const auto& group : groups) weights.push_back(static_cast<double>(group.size()));
  return {weights.begin(), weights.end()};
}

// The region size (in the images' own pixels) that RandomSizeCrop takes of
// images of `size`: drawn in the pixels of the intermediate resize, as the
// official transform draws it, and mapped back.
cv::Size CropSize(cv::Size size, const RandomSizeCrop& crop, std::mt19937_64& rng) {
  std::uniform_int_distribution<std::size_t> pick(0, crop.scales.size() - 1);
  const double scale = static_cast<double>(crop.scales[pick(rng)]) / std::min(size.width, size.height);
  auto side = [&](int extent) {
    const int resized = std::max(1, static_cast<int>(std::lround(extent * scale)));
    const int high = std::min(resized, crop.max_size), low = std::min(crop.min_size, high);
    const int drawn = std::uniform_int_distribution<int>(low, high)(rng);
    return std::clamp(static_cast<int>(std::lround(drawn / scale)), 1, extent);
  };
  const int width = side(size.width);  // the official order: width, then height
  return {width, side(size.height)};
}

// `target` (boxes normalised by `image`'s size) after cutting `region` out
// of the image: clipped to the region, empty boxes dropped, normalised by
// the region's size.
Target CroppedTarget(const Target& target, const cv::Rect& region, const cv::Size& image) {
  if (target.labels.numel() == 0) return target;
  const auto& b = target.boxes;
  auto x0 = (b.select(1, 0) - b.select(1, 2) / 2) * image.width - region.x;
  auto x1 = (b.select(1, 0) + b.select(1, 2) / 2) * image.width - region.x;
  auto y0 = (b.select(1, 1) - b.select(1, 3) / 2) * image.height - region.y;
  auto y1 = (b.select(1, 1) + b.select(1, 3) / 2) * image.height - region.y;
  x0 = x0.clamp(0, region.width);
  x1 = x1.clamp(0, region.width);
  y0 = y0.clamp(0, region.height);
  y1 = y1.clamp(0, region.height);
  const auto keep = (x1 > x0).logical_and(y1 > y0);
  const double w = region.width, h = region.height;
  auto boxes = at::stack({(x0 + x1) / (2 * w), (y0 + y1) / (2 * h), (x1 - x0) / w, (y1 - y0) / h}, 1);
  return {target.labels.index({keep}), boxes.index({keep}).contiguous()};
}

}  // namespace

BatchSampler::BatchSampler(std::vector<std::vector<int64_t>> groups)
    : groups_(std::move(groups)),
      cursors_(groups_.size(), std::numeric_limits<std::size_t>::max()),  // shuffled at first use
      pick_(ProportionalToSize(groups_)) {
  if (groups_.empty()) throw std::invalid_argument("BatchSampler: no images");
  for (const auto& group : groups_) {
    if (group.empty()) throw std::invalid_argument("BatchSampler: an empty group");
  }
}

std::vector<int64_t> BatchSampler::Next(std::size_t batch_size, std::mt19937_64& rng) {
  const std::size_t g = pick_(rng);
  auto& group = groups_[g];
  auto& cursor = cursors_[g];
  std::vector<int64_t> batch;
  while (batch.size() < batch_size) {
    if (cursor >= group.size()) {
      std::shuffle(group.begin(), group.end(), rng);
      cursor = 0;
    }
    batch.push_back(group[cursor++]);
  }
  return batch;
}

void DetectionDataset::Batch(const std::vector<int64_t>& indices, at::Tensor& pixels, at::Tensor& mask,
                             std::vector<Target>& targets, const RandomResize& resize, std::mt19937_64* rng,
                             const RandomSizeCrop& crop) const {
  std::vector<core::PreparedImage> prepared;
  prepared.reserve(indices.size());
  targets.clear();
  image::ResizePolicy policy{0, 0};  // as decoded
  if (!resize.scales.empty() && rng != nullptr) {
    std::uniform_int_distribution<size_t> pick(0, resize.scales.size() - 1);
    policy = {resize.scales[pick(*rng)], resize.max_size};
  }
  std::optional<cv::Size> region_size;  // drawn from the first image: a batch has one size
  if (rng != nullptr && !indices.empty() && crop.probability > 0 && !crop.scales.empty() &&
      std::bernoulli_distribution(crop.probability)(*rng)) {
    region_size = CropSize(images_.at(static_cast<size_t>(indices.front())).size(), crop, *rng);
  }
  for (auto i : indices) {
    const auto& image = images_.at(static_cast<size_t>(i));
    const auto& target = targets_.at(static_cast<size_t>(i));
    if (!region_size) {
      prepared.push_back(image::Prepare(image, policy));
      targets.push_back(target);
      continue;
    }
    const int width = std::min(region_size->width, image.cols), height = std::min(region_size->height, image.rows);
    const cv::Rect region(std::uniform_int_distribution<int>(0, image.cols - width)(*rng),
                          std::uniform_int_distribution<int>(0, image.rows - height)(*rng), width, height);
    prepared.push_back(image::Prepare(image(region).clone(), policy));
    targets.push_back(CroppedTarget(target, region, image.size()));
  }
  std::vector<const core::PreparedImage*> pointers;
  for (const auto& p : prepared) pointers.push_back(&p);
  std::tie(pixels, mask) = core::BatchInputs(pointers);
  if (indices.size() == 1) {  // a batch of one is a view of `prepared`'s memory: copy it out
    pixels = pixels.clone();
    mask = mask.clone();
  }
}

}  // namespace detr::training
