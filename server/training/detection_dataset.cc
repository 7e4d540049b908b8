#include "server/training/detection_dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
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
    auto rgb = image::ReadImage(path);
    images_.push_back(rgb);
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
                             std::vector<Target>& targets, const RandomResize& resize, std::mt19937_64* rng) const {
  std::vector<core::PreparedImage> prepared;
  prepared.reserve(indices.size());
  targets.clear();
  image::ResizePolicy policy{0, 0};  // as decoded
  if (!resize.scales.empty() && rng != nullptr) {
    std::uniform_int_distribution<size_t> pick(0, resize.scales.size() - 1);
    policy = {resize.scales[pick(*rng)], resize.max_size};
  }
  for (auto i : indices) {
    prepared.push_back(image::Prepare(images_.at(static_cast<size_t>(i)), policy));
    targets.push_back(targets_.at(static_cast<size_t>(i)));
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
