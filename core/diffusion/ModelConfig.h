#pragma once

// What a Stable Diffusion checkpoint is: its family (SD1 / SD2), the UNet configuration, the
// parameters of the other components, and the diffusion schedule. Read from the ldm YAML beside
// the checkpoint (same stem, `.yaml`, the webui convention) when there is one, otherwise detected
// from key names and shapes (spec sd-architecture.md section 6). `notes` lists every value that
// was assumed rather than read, so `hnstudio info` can show it.

#include "core/diffusion/UNet.h"

#include <QString>
#include <QStringList>
#include <QVariantMap>

namespace studio {

namespace io {
class TensorSource;
}

enum class ModelFamily
{
    Sd1,
    Sd2,
};

struct ModelConfig
{
    ModelFamily family = ModelFamily::Sd1;
    UNetConfig unet;
    // ldm's first_stage_config.params (embed_dim, ddconfig) and cond_stage_config.params
    // (layer, heads), for the VAE and text-encoder loaders.
    QVariantMap vaeParams;
    QVariantMap textParams;
    bool vPrediction = false;
    bool vPredictionKnown = false; // false: detected SD2 that still needs the UNet probe
    double scaleFactor = 0.18215;
    double linearStart = 0.00085;
    double linearEnd = 0.012;
    int timesteps = 1000;

    QString source;    // "'model.yaml'" or "the checkpoint's weights"
    QStringList notes; // values assumed, not read
};

// The YAML beside a checkpoint (same stem), or an empty string when there is none.
QString ldmConfigPathFor(const QString& checkpointPath);

// Parses an ldm YAML config (model.params ...). Throws studio::Error naming the file and key.
ModelConfig readLdmConfig(const QString& yamlPath);

// Detects the configuration from the checkpoint's UNet and text-encoder keys. Throws
// studio::Error when the file has no UNet.
ModelConfig detectModelConfig(const io::TensorSource& source);

// The webui's SD2 v-prediction probe (spec 5.3): true when the UNet is a v model.
bool probeVPrediction(UNetModel& unet);

// A YAML file as nested QVariantMap / QVariantList / scalars.
QVariant readYamlFile(const QString& path);

QString familyName(ModelFamily family);

} // namespace studio
