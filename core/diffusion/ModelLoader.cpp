#include "core/diffusion/ModelLoader.h"

#include "core/Logging.h"
#include "core/io/TensorSource.h"

#include <ATen/ATen.h>

namespace studio {

ModelConfig resolveModelConfig(const QString& checkpointPath, const QString& explicitYaml,
                               const io::TensorSource& source)
{
    if (!explicitYaml.isEmpty()) {
        return readLdmConfig(explicitYaml);
    }
    const QString sibling = ldmConfigPathFor(checkpointPath);
    if (!sibling.isEmpty()) {
        return readLdmConfig(sibling);
    }
    return detectModelConfig(source);
}

UNetModel loadUNet(const io::TensorSource& source, ModelConfig& config)
{
    UNetModel unet(config.unet);
    io::loadModuleWeights(*unet, source, QStringLiteral("model.diffusion_model."));
    unet->eval();
    for (at::Tensor& parameter : unet->parameters()) {
        parameter.requires_grad_(false);
    }

    if (!config.vPredictionKnown) {
        config.vPrediction = probeVPrediction(unet);
        config.vPredictionKnown = true;
        config.notes << QStringLiteral("parameterization %1 (from the v-prediction probe)")
                            .arg(config.vPrediction ? QStringLiteral("v") : QStringLiteral("eps"));
    }
    qCInfo(lcIo) << "loaded the UNet of" << source.sourceName();
    return unet;
}

} // namespace studio
