#include "core/diffusion/ModelConfig.h"

#include "core/Error.h"
#include "core/io/TensorSource.h"

#include <ATen/ATen.h>
#include <torch/utils.h>
#include <yaml-cpp/yaml.h>

#include <QDir>
#include <QFileInfo>

#include <algorithm>
#include <set>

namespace studio {

namespace {

const QString kUnetPrefix = QStringLiteral("model.diffusion_model.");
const QString kOpenClipProbe =
    QStringLiteral("cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight");

QVariant scalarToVariant(const YAML::Node& node)
{
    const QString text = QString::fromStdString(node.Scalar());
    if (node.Tag() == "!") { // quoted: always a string
        return text;
    }
    const QString lower = text.toLower();
    if (lower == QLatin1String("true") || lower == QLatin1String("false")) {
        return lower == QLatin1String("true");
    }
    if (lower == QLatin1String("null") || lower == QLatin1String("~") || text.isEmpty()) {
        return QVariant();
    }
    bool ok = false;
    const qlonglong integer = text.toLongLong(&ok);
    if (ok) {
        return integer;
    }
    const double number = text.toDouble(&ok);
    return ok ? QVariant(number) : QVariant(text);
}

QVariant nodeToVariant(const YAML::Node& node)
{
    switch (node.Type()) {
    case YAML::NodeType::Map: {
        QVariantMap map;
        for (const auto& item : node) {
            map.insert(QString::fromStdString(item.first.as<std::string>()),
                       nodeToVariant(item.second));
        }
        return map;
    }
    case YAML::NodeType::Sequence: {
        QVariantList list;
        for (const auto& item : node) {
            list.append(nodeToVariant(item));
        }
        return list;
    }
    case YAML::NodeType::Scalar:
        return scalarToVariant(node);
    default:
        return QVariant();
    }
}

QVariantMap mapAt(const QVariantMap& map, const QStringList& path)
{
    QVariantMap current = map;
    for (const QString& key : path) {
        current = current.value(key).toMap();
    }
    return current;
}

int dim(const io::TensorSource& source, const QString& key, int index)
{
    return static_cast<int>(source.shape(key).at(static_cast<size_t>(index)));
}

bool has(const io::TensorSource& source, const QString& key)
{
    return source.contains(key);
}

// Walks input_blocks the way ldm builds them (spec 1.3) to recover the level structure.
void detectUnetLevels(const io::TensorSource& source, UNetConfig& config)
{
    const int mc = config.modelChannels;
    config.channelMult.clear();
    config.attentionResolutions.clear();
    int ds = 1;
    int resBlocksInLevel = 0;
    config.numResBlocks = 0;
    for (int block = 1;; ++block) {
        const QString prefix = kUnetPrefix + QStringLiteral("input_blocks.%1.").arg(block);
        if (has(source, prefix + QStringLiteral("0.op.weight"))) {
            config.numResBlocks = std::max(config.numResBlocks, resBlocksInLevel);
            resBlocksInLevel = 0;
            ds *= 2;
            continue;
        }
        if (!has(source, prefix + QStringLiteral("0.in_layers.2.weight"))) {
            break;
        }
        const int width = dim(source, prefix + QStringLiteral("0.in_layers.2.weight"), 0);
        if (resBlocksInLevel == 0) {
            config.channelMult.push_back(width / mc);
        }
        ++resBlocksInLevel;
        const bool attention = has(source, prefix + QStringLiteral("1.norm.weight"));
        if (attention && std::count(config.attentionResolutions.begin(),
                                    config.attentionResolutions.end(), ds) == 0) {
            config.attentionResolutions.push_back(ds);
        }
    }
    config.numResBlocks = std::max(config.numResBlocks, resBlocksInLevel);
}

void detectUnet(const io::TensorSource& source, ModelConfig& model)
{
    const QString inputConv = kUnetPrefix + QStringLiteral("input_blocks.0.0.weight");
    if (!has(source, inputConv)) {
        throw Error(QStringLiteral("%1 has no UNet ('%2' is missing); is it a Stable Diffusion "
                                   "checkpoint?")
                        .arg(source.sourceName(), inputConv));
    }
    UNetConfig& config = model.unet;
    config.modelChannels = dim(source, inputConv, 0);
    config.inChannels = dim(source, inputConv, 1);
    config.outChannels = dim(source, kUnetPrefix + QStringLiteral("out.2.weight"), 0);
    detectUnetLevels(source, config);

    const QString middle = kUnetPrefix + QStringLiteral("middle_block.1.");
    config.contextDim =
        dim(source, middle + QStringLiteral("transformer_blocks.0.attn2.to_k.weight"), 1);
    config.useLinearInTransformer =
        source.shape(middle + QStringLiteral("proj_in.weight")).size() == 2;
    config.transformerDepth = 0;
    while (has(source, middle + QStringLiteral("transformer_blocks.%1.norm1.weight")
                                    .arg(config.transformerDepth))) {
        ++config.transformerDepth;
    }
}

void applyFamilyDefaults(ModelConfig& model)
{
    // Head counts are not in the weights (spec 6): SD1 fixes the count, SD2 the width.
    model.unet.legacy = false;
    if (model.family == ModelFamily::Sd2) {
        model.unet.numHeads = -1;
        model.unet.numHeadChannels = 64;
        model.notes << QStringLiteral("UNet attention heads of 64 channels (SD2 default)");
        model.notes << QStringLiteral("text encoder: OpenCLIP, penultimate layer, heads = width / "
                                      "64");
    } else {
        model.unet.numHeads = 8;
        model.unet.numHeadChannels = -1;
        model.notes << QStringLiteral("UNet attention: 8 heads (SD1 default)");
        model.notes << QStringLiteral("text encoder: CLIP, last layer, heads = width / 64");
    }
    model.notes << QStringLiteral("schedule: 1000 steps, linear 0.00085 to 0.012; latent scale "
                                  "0.18215");
}

} // namespace

QString familyName(ModelFamily family)
{
    return family == ModelFamily::Sd2 ? QStringLiteral("SD2") : QStringLiteral("SD1");
}

QVariant readYamlFile(const QString& path)
{
    try {
        return nodeToVariant(YAML::LoadFile(QFile::encodeName(path).toStdString()));
    } catch (const YAML::Exception& error) {
        throw Error(QStringLiteral("'%1' is not valid YAML: %2")
                        .arg(QDir::toNativeSeparators(path), QString::fromStdString(error.what())));
    }
}

QString ldmConfigPathFor(const QString& checkpointPath)
{
    const QFileInfo info(checkpointPath);
    const QString yaml = info.dir().filePath(info.completeBaseName() + QStringLiteral(".yaml"));
    return QFileInfo::exists(yaml) ? yaml : QString();
}

ModelConfig readLdmConfig(const QString& yamlPath)
{
    const QString name = QStringLiteral("'%1'").arg(QDir::toNativeSeparators(yamlPath));
    const QVariantMap root = readYamlFile(yamlPath).toMap();
    const QVariantMap params = mapAt(root, {QStringLiteral("model"), QStringLiteral("params")});
    if (params.isEmpty()) {
        throw Error(QStringLiteral("%1 is not an ldm config: it has no model.params").arg(name));
    }

    ModelConfig model;
    model.source = name;
    const QVariantMap unetParams =
        mapAt(params, {QStringLiteral("unet_config"), QStringLiteral("params")});
    if (!unetParams.isEmpty()) {
        model.unet = withContext(name, [&] { return UNetConfig::fromLdmParams(unetParams); });
    }
    model.vaeParams =
        mapAt(params, {QStringLiteral("first_stage_config"), QStringLiteral("params")});
    model.textParams =
        mapAt(params, {QStringLiteral("cond_stage_config"), QStringLiteral("params")});
    const QString textTarget = mapAt(params, {QStringLiteral("cond_stage_config")})
                                   .value(QStringLiteral("target"))
                                   .toString();
    // SD2's traits: the OpenCLIP text encoder, 1024-wide context, linear transformer
    // projections, heads of a fixed width.
    const bool sd2 = textTarget.contains(QStringLiteral("OpenCLIP")) ||
                     model.unet.contextDim == 1024 || model.unet.useLinearInTransformer ||
                     model.unet.numHeadChannels != -1;
    model.family = sd2 ? ModelFamily::Sd2 : ModelFamily::Sd1;

    model.vPrediction =
        params.value(QStringLiteral("parameterization")).toString() == QLatin1String("v");
    model.vPredictionKnown = true;
    model.scaleFactor = params.value(QStringLiteral("scale_factor"), model.scaleFactor).toDouble();
    model.linearStart = params.value(QStringLiteral("linear_start"), model.linearStart).toDouble();
    model.linearEnd = params.value(QStringLiteral("linear_end"), model.linearEnd).toDouble();
    model.timesteps = params.value(QStringLiteral("timesteps"), model.timesteps).toInt();
    return model;
}

ModelConfig detectModelConfig(const io::TensorSource& source)
{
    ModelConfig model;
    model.source = QStringLiteral("the weights of %1").arg(source.sourceName());
    detectUnet(source, model);

    const bool openClip = source.contains(kOpenClipProbe);
    model.family = openClip || model.unet.contextDim == 1024 || model.unet.useLinearInTransformer
                       ? ModelFamily::Sd2
                       : ModelFamily::Sd1;
    applyFamilyDefaults(model);
    model.textParams.insert(QStringLiteral("layer"), model.family == ModelFamily::Sd2
                                                         ? QStringLiteral("penultimate")
                                                         : QStringLiteral("last"));

    // SD2 needs the UNet probe (spec 5.3); inpainting UNets are eps without probing.
    model.vPredictionKnown = model.family == ModelFamily::Sd1 || model.unet.inChannels == 9;
    return model;
}

bool probeVPrediction(UNetModel& unet)
{
    torch::NoGradGuard noGrad;
    const at::TensorOptions options = at::TensorOptions().dtype(at::kFloat);
    const at::Tensor x = at::full({1, unet->config().inChannels, 8, 8}, 0.5, options);
    const at::Tensor t = at::full({1}, 999.0, options);
    const at::Tensor context = at::full({1, 2, unet->config().contextDim}, 0.5, options);
    const double r = (unet->forward(x, t, context) - x).mean().item<double>();
    return r < -1.0;
}

} // namespace studio
