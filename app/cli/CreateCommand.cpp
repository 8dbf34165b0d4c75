// hnstudio create: a new hypernetwork with the webui's options, written as a webui .pt file.

#include "app/cli/CliSupport.h"
#include "app/cli/Commands.h"

#include "core/Error.h"
#include "core/hypernetwork/Activation.h"
#include "core/hypernetwork/HypernetworkConfig.h"
#include "core/hypernetwork/HypernetworkTools.h"

#include <QDir>
#include <QFileInfo>

namespace studio::cli {

namespace {

QList<QCommandLineOption> createOptions()
{
    return {
        {QStringLiteral("name"),
         QStringLiteral("Name stored in the file. Default: the file's base name. Only letters, "
                        "digits and '._- ' are kept, as in the webui."),
         QStringLiteral("NAME")},
        {QStringLiteral("sizes"),
         QStringLiteral("Context widths that get a (k, v) module pair: 768 (SD1 text), 1024 (SD2 "
                        "text), 320/640/1280 (UNet self-attention). Default: 768, 320, 640, 1280."),
         QStringLiteral("LIST"), QStringLiteral("768, 320, 640, 1280")},
        {QStringLiteral("layers"),
         QStringLiteral("Layer structure: width multipliers that start and end with 1. Default: "
                        "\"1, 2, 1\"."),
         QStringLiteral("LIST"), QStringLiteral("1, 2, 1")},
        {QStringLiteral("activation"),
         QStringLiteral("Activation after each hidden layer (\"swish\" is Hardswish, as in the "
                        "webui). One of: %1. Default: linear (none).")
             .arg(activationNames().join(QStringLiteral(", "))),
         QStringLiteral("NAME"), QStringLiteral("linear")},
        {QStringLiteral("layer-norm"), QStringLiteral("Add a LayerNorm after every Linear layer.")},
        {QStringLiteral("dropout"),
         QStringLiteral("Dropout structure: one probability per layer-structure entry, first and "
                        "last 0, e.g. \"0, 0.3, 0\". Default: no dropout."),
         QStringLiteral("LIST")},
        {QStringLiteral("activate-output"),
         QStringLiteral("Also apply the activation after the last Linear layer.")},
        {QStringLiteral("init"),
         QStringLiteral("Weight initialization: Normal, XavierUniform, XavierNormal, "
                        "KaimingUniform or KaimingNormal. Default: Normal."),
         QStringLiteral("SCHEME"), QStringLiteral("Normal")},
        {QStringLiteral("init-std"),
         QStringLiteral("Standard deviation of Normal init and of LayerNorm weights. Default: "
                        "0.01."),
         QStringLiteral("STD"), QStringLiteral("0.01")},
        {QStringLiteral("seed"),
         QStringLiteral("Initialization seed for a reproducible start (k and v modules then "
                        "start identical, as in the extension). Default: random."),
         QStringLiteral("N")},
        {QStringLiteral("skip-connection"),
         QStringLiteral("Use the extension's residual-block layout (not loadable by the plain "
                        "webui).")},
        {QStringLiteral("info"), QStringLiteral("Free text stored as optional_info."),
         QStringLiteral("TEXT")},
        {QStringLiteral("force"), QStringLiteral("Overwrite OUT.pt if it exists.")},
    };
}

HypernetworkConfig configFromOptions(const QCommandLineParser& parser, const QString& outPath)
{
    HypernetworkConfig config;
    config.name = sanitizeHypernetworkName(parser.isSet(QStringLiteral("name"))
                                               ? parser.value(QStringLiteral("name"))
                                               : QFileInfo(outPath).completeBaseName());
    if (config.name.isEmpty()) {
        failUsage(QStringLiteral("--name: the name has no letters or digits"));
    }
    config.sizes = parseSizeList(parser.value(QStringLiteral("sizes")), QStringLiteral("--sizes"));
    config.layerStructure =
        parseNumberList(parser.value(QStringLiteral("layers")), QStringLiteral("--layers"));
    config.layerStructureIntegerItems.clear(); // the webui parses the form's text as floats
    config.activation = parser.value(QStringLiteral("activation")).trimmed().toLower();
    config.layerNorm = parser.isSet(QStringLiteral("layer-norm"));
    config.activateOutput = parser.isSet(QStringLiteral("activate-output"));
    config.weightInit = parseWeightInit(parser.value(QStringLiteral("init")));
    config.normalStd = doubleOption(parser, QStringLiteral("init-std"));
    config.skipConnection = parser.isSet(QStringLiteral("skip-connection"));
    config.writeExtensionKeys = config.skipConnection;
    if (parser.isSet(QStringLiteral("info"))) {
        config.optionalInfo = parser.value(QStringLiteral("info"));
    }
    if (parser.isSet(QStringLiteral("seed"))) {
        config.initSeed = static_cast<uint64_t>(integerOption(parser, QStringLiteral("seed")));
    }

    // Like the webui: a dropout list is floats and sets use_dropout; none is [0] * n as ints.
    config.useDropout = parser.isSet(QStringLiteral("dropout"));
    if (config.useDropout) {
        config.dropoutStructure =
            parseNumberList(parser.value(QStringLiteral("dropout")), QStringLiteral("--dropout"));
        config.dropoutStructureIntegerItems.clear();
    } else {
        config.dropoutStructure.assign(config.layerStructure.size(), 0.0);
        config.dropoutStructureIntegerItems.assign(config.layerStructure.size(), true);
    }
    return config;
}

int create(const QStringList& arguments)
{
    QCommandLineParser parser;
    parser.setApplicationDescription(
        QStringLiteral("Creates a new hypernetwork and writes it as a webui .pt file."));
    parser.addHelpOption();
    parser.addOptions(createOptions());
    parser.addPositionalArgument(QStringLiteral("OUT.pt"), QStringLiteral("The file to write."));
    if (!parseArguments(parser, arguments)) {
        return kExitOk;
    }
    if (parser.positionalArguments().size() != 1) {
        failUsage(QStringLiteral("give exactly one output file"));
    }

    const QString outPath = parser.positionalArguments().front();
    if (QFileInfo::exists(outPath) && !parser.isSet(QStringLiteral("force"))) {
        failUsage(QStringLiteral("'%1' exists; use --force to overwrite it")
                      .arg(QDir::toNativeSeparators(outPath)));
    }

    // Option values that do not parse or do not validate are the user's to fix: usage errors.
    // Failing to write the file is not (exit status 1).
    const HypernetworkConfig config = [&] {
        try {
            HypernetworkConfig parsed = configFromOptions(parser, outPath);
            validate(parsed, /*forCreation=*/true);
            return parsed;
        } catch (const Error& error) {
            failUsage(error.message());
        }
    }();
    const HypernetworkSummary summary = createHypernetworkFile(config, outPath);
    out() << "created '" << QDir::toNativeSeparators(outPath) << "': " << summary.parameterCount
          << " parameters\n";
    out().flush();
    return kExitOk;
}

} // namespace

int runCreate(const QStringList& arguments)
{
    return runCommand(QStringLiteral("create"), [&] { return create(arguments); });
}

} // namespace studio::cli
