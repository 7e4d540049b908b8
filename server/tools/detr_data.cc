// detr-data: a deterministic synthetic detection data set in COCO format:
// flat circles, squares and triangles in random colours and sizes, possibly
// overlapping, on noisy backgrounds.
//
//   detr-data --output DIR [--seed 0] [--train 2000] [--val 200] [--size 128]
//             [--sizes 128x128,192x128,...] [--pad-to 192x128] [--min-extent 15 --max-extent 60]
// writes DIR/{train,val}/NNNNNN.png and DIR/{train,val}.json.
//
// --sizes draws each image's width x height from the list (non-square
// training data); --pad-to places each drawn image, unchanged, at a random
// offset on a larger canvas of the same background (the non-square
// validation set of docs/accuracy.md: the same content as without it). With
// neither, the images are the same as before they existed.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace {

struct Size {
  int width = 0, height = 0;
};

struct Options {
  std::string output;
  std::uint64_t seed = 0;
  int train = 2000, val = 200, size = 128, max_shapes = 5, min_extent = 15, max_extent = 60;
  std::vector<Size> sizes;  // empty: size x size
  Size pad_to;              // 0 x 0: no padding
};

// "WxH" -> Size, each side in [lowest, 4096].
Size ParseSize(const std::string& text, int lowest) {
  Size size;
  char x = 0, rest = 0;
  if (std::sscanf(text.c_str(), "%d%c%d%c", &size.width, &x, &size.height, &rest) != 3 || x != 'x' ||
      size.width < lowest || size.height < lowest || size.width > 4096 || size.height > 4096) {
    throw CLI::ValidationError(
        "size", "'" + text + "' is not WIDTHxHEIGHT with sides in [" + std::to_string(lowest) + ", 4096]");
  }
  return size;
}

// `image` placed at a random offset on a pad_to canvas filled with
// `background` and the same noise; moves `boxes` with it.
cv::Mat Padded(const cv::Mat& image, Size pad_to, const cv::Scalar& background, std::mt19937_64& rng,
               std::vector<cv::Rect>& boxes) {
  cv::Mat canvas(pad_to.height, pad_to.width, CV_8UC3, background);
  cv::Mat noise(pad_to.height, pad_to.width, CV_8UC3);
  cv::RNG noise_rng(rng());  // its own generator: cv::theRNG() draws the images' noise
  noise_rng.fill(noise, cv::RNG::NORMAL, cv::Scalar::all(0), cv::Scalar::all(8));
  canvas += noise;
  const int dx = std::uniform_int_distribution<int>(0, pad_to.width - image.cols)(rng);
  const int dy = std::uniform_int_distribution<int>(0, pad_to.height - image.rows)(rng);
  image.copyTo(canvas(cv::Rect(dx, dy, image.cols, image.rows)));
  for (auto& box : boxes) box += cv::Point(dx, dy);
  return canvas;
}

const char* kCategories[] = {"circle", "square", "triangle"};

// Fraction of box a covered by box b (x0, y0, x1, y1).
double Covered(const cv::Rect& a, const cv::Rect& b) {
  const auto inter = (a & b).area();
  return a.area() > 0 ? static_cast<double>(inter) / a.area() : 0;
}

// Progress on stderr: one line rewritten in place on a terminal; in a log
// (the training scripts tee to files) a line per tenth, not hundreds of
// carriage-return fragments.
void ReportProgress(const std::string& split, int done, int count) {
  static const bool terminal = ::isatty(STDERR_FILENO) == 1;
  if (terminal) {
    if (done % 100 == 0 || done == count)
      std::fprintf(stderr, "\r[detr-data %s] %d/%d%s", split.c_str(), done, count, done == count ? "\n" : "");
  } else if (done == count || done % std::max(1, count / 10) == 0) {
    std::fprintf(stderr, "[detr-data %s] %d/%d\n", split.c_str(), done, count);
  }
}

nlohmann::json MakeSplit(const Options& options, const std::string& split, int count, std::uint64_t seed) {
  namespace fs = std::filesystem;
  fs::create_directories(fs::path(options.output) / split);
  std::mt19937_64 rng(seed);
  std::mt19937_64 pad_rng(seed ^ 0x9e3779b97f4a7c15ull);  // padding never moves the content's stream
  auto uniform = [&](int low, int high) { return std::uniform_int_distribution<int>(low, high)(rng); };
  nlohmann::json coco = {{"images", nlohmann::json::array()},
                         {"annotations", nlohmann::json::array()},
                         {"categories", nlohmann::json::array()}};
  for (int c = 0; c < 3; ++c) coco["categories"].push_back({{"id", c + 1}, {"name", kCategories[c]}});
  int annotation_id = 1;
  for (int index = 0; index < count; ++index) {
    // One size draws nothing, so that a square set is what it always was.
    const Size size = options.sizes.size() == 1
                          ? options.sizes[0]
                          : options.sizes[static_cast<size_t>(uniform(0, static_cast<int>(options.sizes.size()) - 1))];
    const int w = size.width, h = size.height;
    const cv::Scalar background(uniform(0, 255), uniform(0, 255), uniform(0, 255));
    cv::Mat image(h, w, CV_8UC3, background);
    cv::Mat noise(h, w, CV_8UC3);
    cv::randn(noise, cv::Scalar::all(0), cv::Scalar::all(8));
    cv::setRNGSeed(static_cast<int>(rng() & 0x7fffffff));
    image += noise;
    std::vector<cv::Rect> boxes;
    std::vector<int> categories;
    const int shapes = uniform(1, options.max_shapes);
    for (int k = 0; k < shapes; ++k) {
      const int category = uniform(1, 3);
      const int extent = uniform(options.min_extent, std::min(options.max_extent, std::min(w, h) / 2));
      const cv::Rect box(uniform(0, w - extent), uniform(0, h - extent), extent, extent);
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
        const std::vector<cv::Point> corners = {
            {box.x + extent / 2, box.y}, {box.x, box.y + extent - 1}, {box.x + extent - 1, box.y + extent - 1}};
        cv::fillConvexPoly(image, corners, colour, cv::LINE_AA);
      }
      boxes.push_back(box);
      categories.push_back(category);
    }
    if (options.pad_to.width > 0) image = Padded(image, options.pad_to, background, pad_rng, boxes);
    for (size_t k = 0; k < boxes.size(); ++k) {
      const auto& box = boxes[k];
      coco["annotations"].push_back({{"id", annotation_id++},
                                     {"image_id", index + 1},
                                     {"category_id", categories[k]},
                                     {"bbox", {box.x, box.y, box.width, box.height}},
                                     {"area", box.width * box.height},
                                     {"iscrowd", 0}});
    }
    char name[32];
    std::snprintf(name, sizeof(name), "%06d.png", index + 1);
    cv::imwrite((fs::path(options.output) / split / name).string(), image);
    coco["images"].push_back({{"id", index + 1}, {"file_name", name}, {"width", image.cols}, {"height", image.rows}});
    ReportProgress(split, index + 1, count);
  }
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
  std::vector<std::string> sizes;
  std::string pad_to;
  app.add_option("--sizes", sizes, "WxH,...: each image's size drawn from these (instead of --size)")->delimiter(',');
  app.add_option("--pad-to", pad_to, "WxH: each image placed unchanged at a random offset on a canvas this size");
  app.add_option("--min-extent", options.min_extent, "smallest shape side in pixels")
      ->capture_default_str()
      ->check(CLI::Range(4, 1024));
  app.add_option("--max-extent", options.max_extent, "largest shape side in pixels (at most half the image)")
      ->capture_default_str()
      ->check(CLI::Range(4, 1024));
  try {
    app.parse(argc, argv);
    for (const auto& text : sizes) options.sizes.push_back(ParseSize(text, 64));
    if (options.sizes.empty()) options.sizes.push_back({options.size, options.size});
    for (const auto& size : options.sizes) {
      if (std::min(size.width, size.height) / 2 < options.min_extent)
        throw CLI::ValidationError("--min-extent", "shapes must fit in half of every image's shorter side");
    }
    if (!pad_to.empty()) {
      options.pad_to = ParseSize(pad_to, 64);
      for (const auto& size : options.sizes) {
        if (size.width > options.pad_to.width || size.height > options.pad_to.height)
          throw CLI::ValidationError("--pad-to", "must be at least every image's size");
      }
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // Each split has its own stream, so changing --train never changes the validation set.
  const std::pair<const char*, int> splits[] = {{"train", options.train}, {"val", options.val}};
  for (size_t i = 0; i < 2; ++i) {
    const auto coco = MakeSplit(options, splits[i].first, splits[i].second, options.seed * 2 + i);
    std::ofstream((std::filesystem::path(options.output) / (std::string(splits[i].first) + ".json")).string())
        << coco.dump() << "\n";
  }
  return 0;
}
