#include "client/coco_eval.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace detr::client {
namespace {

struct AreaRange {
  double low, high;
};
constexpr AreaRange kAll{0, 1e10}, kSmall{0, 32 * 32}, kMedium{32 * 32, 96 * 96}, kLarge{96 * 96, 1e10};

std::vector<double> IouThresholds() {
  std::vector<double> t;
  for (int i = 0; i < 10; ++i) t.push_back(0.5 + 0.05 * i);  // as np.linspace(.5, .95, 10)
  return t;
}

// COCO's IoU: for a crowd ground truth, the union is the detection's area.
double Iou(const CocoBox& d, const CocoBox& g) {
  const double iw = std::max(0.0, std::min<double>(d.x + d.w, g.x + g.w) - std::max<double>(d.x, g.x));
  const double ih = std::max(0.0, std::min<double>(d.y + d.h, g.y + g.h) - std::max<double>(d.y, g.y));
  const double inter = iw * ih;
  const double uni = g.crowd ? static_cast<double>(d.w) * d.h
                             : static_cast<double>(d.w) * d.h + static_cast<double>(g.w) * g.h - inter;
  return uni > 0 ? inter / uni : 0;
}

double Area(const CocoBox& g) { return g.area >= 0 ? g.area : static_cast<double>(g.w) * g.h; }

// Per image and category: which detections match at each threshold (the
// evaluateImg of pycocotools).
struct ImageResult {
  std::vector<double> scores;              // kept detections, best first
  std::vector<std::vector<bool>> matched;  // [threshold][detection]
  std::vector<std::vector<bool>> ignored;  // [threshold][detection]
  int relevant_ground_truth = 0;           // not ignored
};

ImageResult EvaluateImage(std::vector<const CocoBox*> gts, std::vector<const CocoBox*> dts, AreaRange range,
                          int max_detections, const std::vector<double>& thresholds) {
  ImageResult result;
  std::vector<bool> gt_ignore;
  for (const auto* g : gts) gt_ignore.push_back(g->crowd || Area(*g) < range.low || Area(*g) > range.high);
  // Ground truth: not-ignored first (stable), as pycocotools sorts them.
  std::vector<size_t> gt_order(gts.size());
  std::iota(gt_order.begin(), gt_order.end(), 0);
  std::stable_sort(gt_order.begin(), gt_order.end(), [&](size_t a, size_t b) { return !gt_ignore[a] && gt_ignore[b]; });
  std::stable_sort(dts.begin(), dts.end(), [](const CocoBox* a, const CocoBox* b) { return a->score > b->score; });
  if (static_cast<int>(dts.size()) > max_detections) dts.resize(max_detections);
  for (bool ignore : gt_ignore) result.relevant_ground_truth += !ignore;

  for (const auto* d : dts) result.scores.push_back(d->score);
  for (double t : thresholds) {
    std::vector<bool> gt_taken(gts.size(), false), dt_matched(dts.size(), false), dt_ignored(dts.size(), false);
    for (size_t di = 0; di < dts.size(); ++di) {
      double best = std::min(t, 1 - 1e-10);
      int match = -1;
      for (size_t k = 0; k < gt_order.size(); ++k) {
        const size_t gi = gt_order[k];
        if (gt_taken[gi] && !gts[gi]->crowd) continue;
        // Once matched to a relevant ground truth, ignored ones cannot win.
        if (match >= 0 && !gt_ignore[match] && gt_ignore[gi]) break;
        const double iou = Iou(*dts[di], *gts[gi]);
        if (iou < best) continue;
        best = iou;
        match = static_cast<int>(gi);
      }
      if (match < 0) continue;
      dt_ignored[di] = gt_ignore[match];
      dt_matched[di] = true;
      gt_taken[match] = true;
    }
    // Unmatched detections outside the area range are ignored too.
    for (size_t di = 0; di < dts.size(); ++di) {
      const double area = static_cast<double>(dts[di]->w) * dts[di]->h;
      if (!dt_matched[di] && (area < range.low || area > range.high)) dt_ignored[di] = true;
    }
    result.matched.push_back(dt_matched);
    result.ignored.push_back(dt_ignored);
  }
  return result;
}

// Returns {AP, AR} over categories with ground truth (-1 if none), for one
// area range and detection limit; AP at the thresholds selected by `which`
// (-1: mean over all).
std::pair<double, double> Accumulate(const std::vector<CocoBox>& ground_truth, const std::vector<CocoBox>& detections,
                                     const std::vector<int>& image_ids, AreaRange range, int max_detections,
                                     int which_threshold) {
  const auto thresholds = IouThresholds();
  std::set<int> categories;
  for (const auto& g : ground_truth) categories.insert(g.category_id);
  for (const auto& d : detections) categories.insert(d.category_id);
  const std::set<int> images(image_ids.begin(), image_ids.end());
  std::vector<double> precisions, recalls;
  for (int category : categories) {
    std::vector<ImageResult> results;
    int relevant = 0;
    for (int image : images) {
      std::vector<const CocoBox*> gts, dts;
      for (const auto& g : ground_truth)
        if (g.image_id == image && g.category_id == category) gts.push_back(&g);
      for (const auto& d : detections)
        if (d.image_id == image && d.category_id == category) dts.push_back(&d);
      if (gts.empty() && dts.empty()) continue;
      results.push_back(EvaluateImage(gts, dts, range, max_detections, thresholds));
      relevant += results.back().relevant_ground_truth;
    }
    if (relevant == 0) continue;  // pycocotools: -1, left out of the mean
    for (size_t t = 0; t < thresholds.size(); ++t) {
      if (which_threshold >= 0 && static_cast<int>(t) != which_threshold) continue;
      std::vector<std::pair<double, bool>> scored;  // (score, true positive), ignored ones dropped
      for (const auto& r : results) {
        for (size_t i = 0; i < r.scores.size(); ++i) {
          if (!r.ignored[t][i]) scored.emplace_back(r.scores[i], r.matched[t][i]);
        }
      }
      std::stable_sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
      std::vector<double> precision, recall;
      double tp = 0, fp = 0;
      for (const auto& [score, positive] : scored) {
        (positive ? tp : fp) += 1;
        recall.push_back(tp / relevant);
        precision.push_back(tp / (tp + fp));
      }
      recalls.push_back(recall.empty() ? 0 : recall.back());
      for (int i = static_cast<int>(precision.size()) - 2; i >= 0; --i)
        precision[i] = std::max(precision[i], precision[i + 1]);
      double sum = 0;
      for (int r = 0; r <= 100; ++r) {
        const double level = r / 100.0;
        const auto it = std::lower_bound(recall.begin(), recall.end(), level);
        if (it != recall.end()) sum += precision[it - recall.begin()];
      }
      precisions.push_back(sum / 101);
    }
  }
  auto mean = [](const std::vector<double>& v) {
    return v.empty() ? -1.0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size();
  };
  return {mean(precisions), mean(recalls)};
}

}  // namespace

CocoSummary EvaluateCoco(const std::vector<CocoBox>& gt, const std::vector<CocoBox>& dt,
                         const std::vector<int>& images) {
  CocoSummary s;
  s.ap = Accumulate(gt, dt, images, kAll, 100, -1).first;
  s.ap50 = Accumulate(gt, dt, images, kAll, 100, 0).first;
  s.ap75 = Accumulate(gt, dt, images, kAll, 100, 5).first;
  s.ap_small = Accumulate(gt, dt, images, kSmall, 100, -1).first;
  s.ap_medium = Accumulate(gt, dt, images, kMedium, 100, -1).first;
  s.ap_large = Accumulate(gt, dt, images, kLarge, 100, -1).first;
  s.ar1 = Accumulate(gt, dt, images, kAll, 1, -1).second;
  s.ar10 = Accumulate(gt, dt, images, kAll, 10, -1).second;
  s.ar100 = Accumulate(gt, dt, images, kAll, 100, -1).second;
  return s;
}

std::string FormatCocoSummary(const CocoSummary& s) {
  struct Row {
    const char* kind;
    const char* iou;
    const char* area;
    int dets;
    double value;
  };
  const Row rows[] = {
      {"Average Precision  (AP)", "0.50:0.95", "   all", 100, s.ap},
      {"Average Precision  (AP)", "0.50     ", "   all", 100, s.ap50},
      {"Average Precision  (AP)", "0.75     ", "   all", 100, s.ap75},
      {"Average Precision  (AP)", "0.50:0.95", " small", 100, s.ap_small},
      {"Average Precision  (AP)", "0.50:0.95", "medium", 100, s.ap_medium},
      {"Average Precision  (AP)", "0.50:0.95", " large", 100, s.ap_large},
      {"Average Recall     (AR)", "0.50:0.95", "   all", 1, s.ar1},
      {"Average Recall     (AR)", "0.50:0.95", "   all", 10, s.ar10},
      {"Average Recall     (AR)", "0.50:0.95", "   all", 100, s.ar100},
  };
  std::string out;
  char line[160];
  for (const auto& r : rows) {
    std::snprintf(line, sizeof(line), " %s @[ IoU=%s | area=%s | maxDets=%3d ] = %.3f\n", r.kind, r.iou, r.area, r.dets,
                  r.value);
    out += line;
  }
  return out;
}

CocoDataset ReadCocoAnnotations(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
  CocoDataset dataset;
  try {
    for (const auto& image : json.at("images"))
      dataset.image_ids[image.at("file_name").get<std::string>()] = image.at("id").get<int>();
    for (const auto& c : json.at("categories"))
      dataset.categories[c.at("id").get<int>()] = c.at("name").get<std::string>();
    for (const auto& a : json.at("annotations")) {
      CocoBox box;
      box.image_id = a.at("image_id").get<int>();
      box.category_id = a.at("category_id").get<int>();
      const auto& b = a.at("bbox");
      box.x = b.at(0).get<float>();
      box.y = b.at(1).get<float>();
      box.w = b.at(2).get<float>();
      box.h = b.at(3).get<float>();
      box.area = a.value("area", -1.0f);
      box.crowd = a.value("iscrowd", 0) != 0;
      dataset.ground_truth.push_back(box);
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": not a COCO annotations file: " + e.what());
  }
  return dataset;
}

}  // namespace detr::client
