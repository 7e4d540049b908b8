// Where the service meets the model core: a configured model entry becomes a
// loaded detector. Its own library, so that the service links no torch and
// the server and the tests load models the same way.
#pragma once

#include <memory>

#include "server/core/api/detector.h"
#include "server/service/config/server_config.h"

namespace detr {

/// Builds and loads the entry's model: weights (or seeded), backbone plans
/// for its input shapes, int8 with its calibration. Throws what
/// core::BuildModel throws, with messages naming the files.
std::unique_ptr<core::Detector> LoadDetector(const service::ModelEntry& entry);

}  // namespace detr
