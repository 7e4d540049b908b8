#include "server/training/detection_dataset.h"

#include <filesystem>
#include <fstream>
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
      const float x = b.at(0).get<float>(), y = b.at(1).get<float>(), bw = b.at(2).get<float>(), bh = b.at(3).get<float>();
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

void DetectionDataset::Batch(const std::vector<int64_t>& indices, at::Tensor& pixels, at::Tensor& mask,
                             std::vector<Target>& targets, const RandomResize& resize, std::mt19937_64* rng) const {
  std::vector<core::PreparedImage> prepared;
  prepared.reserve(indices.size());
  targets.clear();
  for (auto i : indices) {
    image::ResizePolicy policy{0, 0};  // as decoded
    if (!resize.scales.empty() && rng != nullptr) {
      std::uniform_int_distribution<size_t> pick(0, resize.scales.size() - 1);
      policy = {resize.scales[pick(*rng)], resize.max_size};
    }
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
