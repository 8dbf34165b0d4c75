// hnstudio info: what a hypernetwork file holds, as text or JSON.

#include "app/cli/CliSupport.h"
#include "app/cli/Commands.h"

#include "core/hypernetwork/HypernetworkFile.h"

#include <QDir>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

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

int info(const QStringList& arguments)
{
    QCommandLineParser parser;
    parser.setApplicationDescription(
        QStringLiteral("Shows the structure and metadata of a hypernetwork file (.pt)."));
    parser.addHelpOption();
    parser.addOption({QStringLiteral("json"), QStringLiteral("Print one JSON object instead of "
                                                             "text.")});
    parser.addPositionalArgument(QStringLiteral("FILE.pt"), QStringLiteral("The file to read."));
    if (!parseArguments(parser, arguments)) {
        return kExitOk;
    }
    if (parser.positionalArguments().size() != 1) {
        failUsage(QStringLiteral("give exactly one file"));
    }

    const QString path = parser.positionalArguments().front();
    const QJsonObject description = describe(loadHypernetwork(path), path);
    if (parser.isSet(QStringLiteral("json"))) {
        out() << QJsonDocument(description).toJson(QJsonDocument::Indented);
    } else {
        printText(description);
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
