#include "server/types/coco_classes.h"

#include <array>

namespace detr {
namespace {

const std::array<std::string, 91> kNames = {
    "N/A",        "person",        "bicycle",       "car",          "motorcycle",     "airplane",
    "bus",        "train",         "truck",         "boat",         "traffic light",  "fire hydrant",
    "N/A",        "stop sign",     "parking meter", "bench",        "bird",           "cat",
    "dog",        "horse",         "sheep",         "cow",          "elephant",       "bear",
    "zebra",      "giraffe",       "N/A",           "backpack",     "umbrella",       "N/A",
    "N/A",        "handbag",       "tie",           "suitcase",     "frisbee",        "skis",
    "snowboard",  "sports ball",   "kite",          "baseball bat", "baseball glove", "skateboard",
    "surfboard",  "tennis racket", "bottle",        "N/A",          "wine glass",     "cup",
    "fork",       "knife",         "spoon",         "bowl",         "banana",         "apple",
    "sandwich",   "orange",        "broccoli",      "carrot",       "hot dog",        "pizza",
    "donut",      "cake",          "chair",         "couch",        "potted plant",   "bed",
    "N/A",        "dining table",  "N/A",           "N/A",          "toilet",         "N/A",
    "tv",         "laptop",        "mouse",         "remote",       "keyboard",       "cell phone",
    "microwave",  "oven",          "toaster",       "sink",         "refrigerator",   "N/A",
    "book",       "clock",         "vase",          "scissors",     "teddy bear",     "hair drier",
    "toothbrush",
};

}  // namespace

const std::string& CocoClassName(int class_id) {
  if (class_id < 0 || class_id >= static_cast<int>(kNames.size())) return kNames[0];
  return kNames[class_id];
}

}  // namespace detr
