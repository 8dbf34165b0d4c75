// hnstudio info: what a hypernetwork file holds, as text or JSON.

#include "app/cli/CliSupport.h"
#include "app/cli/Commands.h"

#include "core/diffusion/ModelLoader.h"
#include "core/hypernetwork/HypernetworkFile.h"
#include "core/io/TensorSource.h"

#include <QDir>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

#include <algorithm>

namespace studio::cli {

namespace {

QJsonValue optionalJson(const std::optional<QString>& value)
{
    return value ? QJsonValue(*value) : QJsonValue(QJsonValue::Null);
}

QJsonArray numbersJson(const std::vector<double>& values)
{
    QJsonArray array;
    for (double value : values) {
        array.append(value);
    }
    return array;
}

QJsonObject describe(const Hypernetwork& hypernetwork, const QString& path)
{
    const HypernetworkConfig& config = hypernetwork.config();
    QJsonArray sizes;
    for (int size : config.sizes) {
        sizes.append(size);
    }

    QJsonObject info;
    info[QStringLiteral("file")] = QDir::toNativeSeparators(path);
    info[QStringLiteral("name")] = config.name;
    info[QStringLiteral("step")] = static_cast<double>(config.step);
    info[QStringLiteral("sizes")] = sizes;
    info[QStringLiteral("layer_structure")] = numbersJson(config.layerStructure);
    info[QStringLiteral("activation_func")] = optionalJson(config.activation);
    info[QStringLiteral("is_layer_norm")] = config.layerNorm;
    info[QStringLiteral("dropout_structure")] = numbersJson(config.dropoutStructure);
    info[QStringLiteral("use_dropout")] = config.useDropout;
    info[QStringLiteral("activate_output")] = config.activateOutput;
    info[QStringLiteral("weight_initialization")] = weightInitName(config.weightInit);
    info[QStringLiteral("skip_connection")] = config.skipConnection;
    info[QStringLiteral("sd_checkpoint")] = optionalJson(config.sdCheckpoint);
    info[QStringLiteral("sd_checkpoint_name")] = optionalJson(config.sdCheckpointName);
    info[QStringLiteral("optional_info")] = optionalJson(config.optionalInfo);
    info[QStringLiteral("parameters")] = static_cast<double>(hypernetwork.parameterCount());
    info[QStringLiteral("file_size")] = static_cast<double>(QFileInfo(path).size());
    info[QStringLiteral("shorthash")] = fileShortHash(path);
    return info;
}

QString displayValue(const QJsonValue& value)
{
    if (value.isArray()) {
        QStringList items;
        for (const QJsonValue& item : value.toArray()) {
            items << item.toVariant().toString();
        }
        return items.join(QStringLiteral(", "));
    }
    if (value.isNull()) {
        return QStringLiteral("None");
    }
    if (value.isBool()) {
        return value.toBool() ? QStringLiteral("yes") : QStringLiteral("no");
    }
    return value.toVariant().toString();
}

void printText(const QJsonObject& info)
{
    const QStringList order = {
        QStringLiteral("file"),
        QStringLiteral("name"),
        QStringLiteral("step"),
        QStringLiteral("sizes"),
        QStringLiteral("layer_structure"),
        QStringLiteral("activation_func"),
        QStringLiteral("is_layer_norm"),
        QStringLiteral("dropout_structure"),
        QStringLiteral("activate_output"),
        QStringLiteral("weight_initialization"),
        QStringLiteral("skip_connection"),
        QStringLiteral("sd_checkpoint"),
        QStringLiteral("sd_checkpoint_name"),
        QStringLiteral("optional_info"),
        QStringLiteral("parameters"),
        QStringLiteral("file_size"),
        QStringLiteral("shorthash"),
    };
    for (const QString& key : order) {
        out() << (key + QLatin1Char(':')).leftJustified(24) << displayValue(info.value(key))
              << '\n';
    }
}

QJsonArray intsJson(const std::vector<int>& values)
{
    QJsonArray array;
    for (int value : values) {
        array.append(value);
    }
    return array;
}

bool hasPrefix(const io::TensorSource& source, const QString& prefix)
{
    const QStringList names = source.names();
    return std::any_of(names.begin(), names.end(),
                       [&](const QString& name) { return name.startsWith(prefix); });
}

QJsonObject describeModel(const QString& path, const QString& yaml)
{
    const auto source = io::openTensorSource(path);
    ModelConfig config = resolveModelConfig(path, yaml, *source);
    if (!config.vPredictionKnown) {
        loadUNet(*source, config); // runs the SD2 v-prediction probe and notes the result
    }

    const UNetConfig& unet = config.unet;
    QJsonObject unetJson;
    unetJson[QStringLiteral("model_channels")] = unet.modelChannels;
    unetJson[QStringLiteral("in_channels")] = unet.inChannels;
    unetJson[QStringLiteral("channel_mult")] = intsJson(unet.channelMult);
    unetJson[QStringLiteral("num_res_blocks")] = unet.numResBlocks;
    unetJson[QStringLiteral("attention_resolutions")] = intsJson(unet.attentionResolutions);
    unetJson[QStringLiteral("num_heads")] = unet.numHeads;
    unetJson[QStringLiteral("num_head_channels")] = unet.numHeadChannels;
    unetJson[QStringLiteral("transformer_depth")] = unet.transformerDepth;
    unetJson[QStringLiteral("context_dim")] = unet.contextDim;
    unetJson[QStringLiteral("use_linear_in_transformer")] = unet.useLinearInTransformer;

    QJsonArray components;
    const std::pair<const char*, const char*> prefixes[] = {
        {"unet", "model.diffusion_model."},
        {"vae", "first_stage_model."},
        {"text_encoder_sd1", "cond_stage_model.transformer."},
        {"text_encoder_sd2", "cond_stage_model.model."},
    };
    for (const auto& [name, prefix] : prefixes) {
        if (hasPrefix(*source, QString::fromLatin1(prefix))) {
            components.append(QString::fromLatin1(name));
        }
    }

    QJsonObject info;
    info[QStringLiteral("file")] = QDir::toNativeSeparators(path);
    info[QStringLiteral("family")] = familyName(config.family);
    info[QStringLiteral("parameterization")] =
        config.vPrediction ? QStringLiteral("v") : QStringLiteral("eps");
    info[QStringLiteral("config_source")] = config.source;
    info[QStringLiteral("tensors")] = static_cast<int>(source->names().size());
    info[QStringLiteral("components")] = components;
    info[QStringLiteral("unet")] = unetJson;
    info[QStringLiteral("assumed")] = QJsonArray::fromStringList(config.notes);
    return info;
}

void printModelText(const QJsonObject& info)
{
    for (const char* key :
         {"file", "family", "parameterization", "config_source", "tensors", "components"}) {
        const QString name = QString::fromLatin1(key);
        out() << (name + QLatin1Char(':')).leftJustified(24) << displayValue(info.value(name))
              << '\n';
    }
    const QJsonObject unet = info.value(QStringLiteral("unet")).toObject();
    for (auto item = unet.begin(); item != unet.end(); ++item) {
        out() << (QStringLiteral("unet.") + item.key() + QLatin1Char(':')).leftJustified(24)
              << displayValue(item.value()) << '\n';
    }
    for (const QJsonValue& note : info.value(QStringLiteral("assumed")).toArray()) {
        out() << QStringLiteral("assumed:").leftJustified(24) << note.toString() << '\n';
    }
}

bool isHypernetworkFile(const QString& path)
{
    return QFileInfo(path).suffix().compare(QLatin1String("pt"), Qt::CaseInsensitive) == 0;
}

int info(const QStringList& arguments)
{
    QCommandLineParser parser;
    parser.setApplicationDescription(
        QStringLiteral("Shows the structure and metadata of a hypernetwork file (.pt), or what a "
                       "Stable Diffusion checkpoint (.safetensors, .ckpt) is: its family, "
                       "configuration, and the values that were assumed rather than read."));
    parser.addHelpOption();
    parser.addOption({QStringLiteral("json"), QStringLiteral("Print one JSON object instead of "
                                                             "text.")});
    parser.addOption({QStringLiteral("config"),
                      QStringLiteral("For a checkpoint: the ldm YAML config. Default: the .yaml "
                                     "beside it, else detection from the weights."),
                      QStringLiteral("YAML")});
    parser.addPositionalArgument(QStringLiteral("FILE"),
                                 QStringLiteral("A hypernetwork .pt or a checkpoint."));
    if (!parseArguments(parser, arguments)) {
        return kExitOk;
    }
    if (parser.positionalArguments().size() != 1) {
        failUsage(QStringLiteral("give exactly one file"));
    }

    const QString path = parser.positionalArguments().front();
    const bool hypernetwork = isHypernetworkFile(path);
    const QJsonObject description =
        hypernetwork ? describe(loadHypernetwork(path), path)
                     : describeModel(path, parser.value(QStringLiteral("config")));
    if (parser.isSet(QStringLiteral("json"))) {
        out() << QJsonDocument(description).toJson(QJsonDocument::Indented);
    } else if (hypernetwork) {
        printText(description);
    } else {
        printModelText(description);
    }
    out().flush();
    return kExitOk;
}

} // namespace

int runInfo(const QStringList& arguments)
{
    return runCommand(QStringLiteral("info"), [&] { return info(arguments); });
}

} // namespace studio::cli
