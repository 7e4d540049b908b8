// COCO category names indexed by the official DETR class id (91 ids, some
// unused by COCO and named "N/A").
#pragma once

#include <string>

namespace detr {

/// Name of COCO category `class_id`; "N/A" for unused or out-of-range ids.
const std::string& CocoClassName(int class_id);

}  // namespace detr
