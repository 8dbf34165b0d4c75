// hnstudio probe: runs one component on tensors read from a safetensors file and writes its
// outputs, to check that a file loads and computes what the original code computes.

#include "app/cli/CliSupport.h"
#include "app/cli/Commands.h"

#include "core/Error.h"
#include "core/hypernetwork/HypernetworkFile.h"
#include "core/io/SafeTensors.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <QDir>

namespace studio::cli {

namespace {

const QString kContextPrefix = QStringLiteral("context_");

// "FILE.pt" or "FILE.pt:0.5" (a trailing number after the last colon is the strength).
std::pair<QString, double> parseHypernetworkArgument(const QString& argument, double fallback)
{
    const qsizetype colon = argument.lastIndexOf(QLatin1Char(':'));
    if (colon > 0) {
        bool ok = false;
        const double strength = argument.mid(colon + 1).toDouble(&ok);
        if (ok) {
            return {argument.left(colon), strength};
        }
    }
    return {argument, fallback};
}

std::vector<Hypernetwork> loadChain(const QCommandLineParser& parser)
{
    const double strength = parser.isSet(QStringLiteral("strength"))
                                ? doubleOption(parser, QStringLiteral("strength"))
                                : 1.0;
    std::vector<Hypernetwork> chain;
    for (const QString& argument : parser.values(QStringLiteral("hypernetwork"))) {
        const auto [path, fileStrength] = parseHypernetworkArgument(argument, strength);
        Hypernetwork hypernetwork = loadHypernetwork(path);
        hypernetwork.setStrength(fileStrength);
        hypernetwork.train(false);
        chain.push_back(hypernetwork);
    }
    if (chain.empty()) {
        failUsage(QStringLiteral("--hypernetwork is required"));
    }
    return chain;
}

int probeHypernetwork(const QCommandLineParser& parser)
{
    const std::vector<Hypernetwork> chain = loadChain(parser);
    std::vector<const Hypernetwork*> chainPointers;
    for (const Hypernetwork& hypernetwork : chain) {
        chainPointers.push_back(&hypernetwork);
    }

    const QString inputPath = parser.value(QStringLiteral("input"));
    const io::SafeTensorsFile input = io::SafeTensorsFile::open(inputPath);
    std::vector<std::pair<QString, at::Tensor>> outputs;
    torch::NoGradGuard noGrad;
    for (const QString& name : input.names()) {
        if (!name.startsWith(kContextPrefix)) {
            continue;
        }
        const QString size = name.mid(kContextPrefix.size());
        const auto [k, v] = applyHypernetworks(chainPointers, input.tensor(name, at::kFloat));
        outputs.emplace_back(QStringLiteral("k_") + size, k.contiguous());
        outputs.emplace_back(QStringLiteral("v_") + size, v.contiguous());
    }
    if (outputs.empty()) {
        throw Error(QStringLiteral("'%1' has no tensor named context_<width>")
                        .arg(QDir::toNativeSeparators(inputPath)));
    }

    io::writeSafeTensors(parser.value(QStringLiteral("output")), outputs);
    return kExitOk;
}

int probe(const QStringList& arguments)
{
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral(
        "Runs one component on tensors read from a safetensors file and writes its outputs.\n"
        "Components:\n"
        "  hypernetwork  reads every context_<width> tensor and writes k_<width> and v_<width>,\n"
        "                the contexts the attention's to_k and to_v receive."));
    parser.addHelpOption();
    parser.addOptions({
        {QStringLiteral("hypernetwork"),
         QStringLiteral("A hypernetwork file, optionally with its strength (FILE.pt:0.5). "
                        "Repeat to apply several in sequence, as the webui does."),
         QStringLiteral("FILE.pt[:S]")},
        {QStringLiteral("strength"),
         QStringLiteral("Strength for hypernetworks given without one. Default: 1."),
         QStringLiteral("S")},
        {QStringLiteral("input"), QStringLiteral("The safetensors file with the inputs."),
         QStringLiteral("IN.safetensors")},
        {QStringLiteral("output"), QStringLiteral("The safetensors file to write."),
         QStringLiteral("OUT.safetensors")},
    });
    parser.addPositionalArgument(QStringLiteral("COMPONENT"),
                                 QStringLiteral("The component to run: hypernetwork."));
    if (!parseArguments(parser, arguments)) {
        return kExitOk;
    }

    const QStringList positional = parser.positionalArguments();
    if (positional.size() != 1) {
        failUsage(QStringLiteral("give exactly one component"));
    }
    for (const char* required : {"input", "output"}) {
        if (!parser.isSet(QString::fromLatin1(required))) {
            failUsage(QStringLiteral("--%1 is required").arg(QString::fromLatin1(required)));
        }
    }
    if (positional.front() == QLatin1String("hypernetwork")) {
        return probeHypernetwork(parser);
    }
    failUsage(
        QStringLiteral("unknown component '%1'; available: hypernetwork").arg(positional.front()));
}

} // namespace

int runProbe(const QStringList& arguments)
{
    return runCommand(QStringLiteral("probe"), [&] { return probe(arguments); });
}

} // namespace studio::cli
