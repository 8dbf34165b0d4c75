#pragma once

// Loading the components of a Stable Diffusion checkpoint: the configuration (explicit YAML,
// the YAML beside the checkpoint, or detection), and each network with its weights.

#include "core/diffusion/ModelConfig.h"
#include "core/diffusion/UNet.h"

#include <QString>

namespace studio {

namespace io {
class TensorSource;
}

// `explicitYaml` when given; else `checkpoint`'s .yaml sibling; else detection from `source`.
ModelConfig resolveModelConfig(const QString& checkpointPath, const QString& explicitYaml,
                               const io::TensorSource& source);

// The UNet of `source` (keys under model.diffusion_model.), frozen, in eval mode, float32.
// For a detected SD2 model whose parameterization is unknown, runs the v-prediction probe and
// records the result in `config`.
UNetModel loadUNet(const io::TensorSource& source, ModelConfig& config);

} // namespace studio
