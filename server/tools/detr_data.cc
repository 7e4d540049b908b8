// detr-data: a deterministic synthetic detection data set in COCO format:
// flat circles, squares and triangles in random colours and sizes, possibly
// overlapping, on noisy backgrounds.
//
//   detr-data --output DIR [--seed 0] [--train 2000] [--val 200] [--size 128]
// writes DIR/{train,val}/NNNNNN.png and DIR/{train,val}.json.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace {

struct Options {
  std::string output;
  std::uint64_t seed = 0;
  int train = 2000, val = 200, size = 128, max_shapes = 5;
};

const char* kCategories[] = {"circle", "square", "triangle"};

// Fraction of box a covered by box b (x0, y0, x1, y1).
double Covered(const cv::Rect& a, const cv::Rect& b) {
  const auto inter = (a & b).area();
  return a.area() > 0 ? static_cast<double>(inter) / a.area() : 0;
}

nlohmann::json MakeSplit(const Options& options, const std::string& split, int count, std::uint64_t seed) {
  namespace fs = std::filesystem;
  fs::create_directories(fs::path(options.output) / split);
  std::mt19937_64 rng(seed);
  auto uniform = [&](int low, int high) { return std::uniform_int_distribution<int>(low, high)(rng); };
  nlohmann::json coco = {{"images", nlohmann::json::array()}, {"annotations", nlohmann::json::array()},
                         {"categories", nlohmann::json::array()}};
  for (int c = 0; c < 3; ++c) coco["categories"].push_back({{"id", c + 1}, {"name", kCategories[c]}});
  int annotation_id = 1;
  for (int index = 0; index < count; ++index) {
    const int s = options.size;
    cv::Mat image(s, s, CV_8UC3, cv::Scalar(uniform(0, 255), uniform(0, 255), uniform(0, 255)));
    cv::Mat noise(s, s, CV_8UC3);
    cv::randn(noise, cv::Scalar::all(0), cv::Scalar::all(8));
    cv::setRNGSeed(static_cast<int>(rng() & 0x7fffffff));
    image += noise;
    std::vector<cv::Rect> boxes;
    const int shapes = uniform(1, options.max_shapes);
    for (int k = 0; k < shapes; ++k) {
      const int category = uniform(1, 3);
      const int extent = uniform(15, std::min(60, s / 2));
      const cv::Rect box(uniform(0, s - extent), uniform(0, s - extent), extent, extent);
      // A new shape may cover at most half of an earlier one.
      bool hides = false;
      for (const auto& earlier : boxes) hides |= Covered(earlier, box) > 0.5;
      if (hides) continue;
      const cv::Scalar colour(uniform(0, 255), uniform(0, 255), uniform(0, 255));
      if (category == 1) {
        cv::circle(image, {box.x + extent / 2, box.y + extent / 2}, extent / 2, colour, cv::FILLED, cv::LINE_AA);
      } else if (category == 2) {
        cv::rectangle(image, box, colour, cv::FILLED);
      } else {
        const std::vector<cv::Point> corners = {{box.x + extent / 2, box.y}, {box.x, box.y + extent - 1},
                                                {box.x + extent - 1, box.y + extent - 1}};
        cv::fillConvexPoly(image, corners, colour, cv::LINE_AA);
      }
      boxes.push_back(box);
      coco["annotations"].push_back({{"id", annotation_id++}, {"image_id", index + 1}, {"category_id", category},
                                     {"bbox", {box.x, box.y, box.width, box.height}},
                                     {"area", box.width * box.height}, {"iscrowd", 0}});
    }
    char name[32];
    std::snprintf(name, sizeof(name), "%06d.png", index + 1);
    cv::imwrite((fs::path(options.output) / split / name).string(), image);
    coco["images"].push_back({{"id", index + 1}, {"file_name", name}, {"width", s}, {"height", s}});
    if ((index + 1) % 100 == 0 || index + 1 == count) std::fprintf(stderr, "\r[detr-data %s] %d/%d", split.c_str(), index + 1, count);
  }
  std::fprintf(stderr, "\n");
  return coco;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{"detr-data: a deterministic synthetic shapes detection data set in COCO format."};
  app.add_option("--output", options.output, "output directory")->required();
  app.add_option("--seed", options.seed, "random seed")->capture_default_str();
  app.add_option("--train", options.train, "training images")->capture_default_str();
  app.add_option("--val", options.val, "validation images")->capture_default_str();
  app.add_option("--size", options.size, "image side in pixels")->capture_default_str()->check(CLI::Range(64, 1024));
  app.add_option("--max-shapes", options.max_shapes, "shapes per image at most")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  // Each split has its own stream, so changing --train never changes the validation set.
  const std::pair<const char*, int> splits[] = {{"train", options.train}, {"val", options.val}};
  for (size_t i = 0; i < 2; ++i) {
    const auto coco = MakeSplit(options, splits[i].first, splits[i].second, options.seed * 2 + i);
    std::ofstream((std::filesystem::path(options.output) / (std::string(splits[i].first) + ".json")).string())
        << coco.dump() << "\n";
  }
  return 0;
}
