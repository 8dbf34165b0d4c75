// hnstudio merge: one hypernetwork from the weighted sum of several of the same structure,
// written as an ordinary webui .pt file.

#include "app/cli/CliSupport.h"
#include "app/cli/Commands.h"

#include "core/Error.h"
#include "core/hypernetwork/HypernetworkConfig.h"
#include "core/hypernetwork/HypernetworkTools.h"

#include <QDir>
#include <QFileInfo>

#include <cmath>
#include <optional>

namespace studio::cli {

namespace {

struct WeightedInput
{
    QString path;
    std::optional<double> weight;
};

// "FILE.pt" or "FILE.pt:0.5": a number after the last colon is the weight (a colon followed by
// anything else belongs to the path, as in "C:\models\a.pt").
WeightedInput parseInput(const QString& argument)
{
    const qsizetype colon = argument.lastIndexOf(QLatin1Char(':'));
    if (colon > 0) {
        bool ok = false;
        const double weight = argument.mid(colon + 1).toDouble(&ok);
        if (ok) {
            if (!std::isfinite(weight)) {
                failUsage(QStringLiteral("'%1': the weight should be a finite number, like "
                                         "FILE.pt:0.5")
                              .arg(argument));
            }
            return {argument.left(colon), weight};
        }
    }
    return {argument, std::nullopt};
}

// Weights given for every input are used as they are; none given means an average (1/N each).
// Some given and some not is ambiguous, so it is refused.
std::vector<MergeInput> mergeInputs(const QStringList& arguments)
{
    std::vector<WeightedInput> parsed;
    int weighted = 0;
    for (const QString& argument : arguments) {
        parsed.push_back(parseInput(argument));
        weighted += parsed.back().weight ? 1 : 0;
    }
    if (weighted != 0 && weighted != int(parsed.size())) {
        failUsage(QStringLiteral("give a weight to every input (A.pt:0.7 B.pt:0.3) or to none "
                                 "(an equal average)"));
    }
    std::vector<MergeInput> inputs;
    for (const WeightedInput& input : parsed) {
        if (!QFileInfo(input.path).isFile()) {
            throw Error(QStringLiteral("'%1' is not a file; give FILE.pt or FILE.pt:WEIGHT")
                            .arg(QDir::toNativeSeparators(input.path)));
        }
        inputs.push_back({input.path, input.weight.value_or(1.0 / double(parsed.size()))});
    }
    return inputs;
}

void addOptions(QCommandLineParser& parser)
{
    parser.addOptions({
        {QStringLiteral("name"),
         QStringLiteral("Name stored in the merged file. Default: OUT's base name. Only letters, "
                        "digits and '._- ' are kept, as in the webui."),
         QStringLiteral("NAME")},
        {QStringLiteral("force"), QStringLiteral("Overwrite OUT.pt if it exists.")},
    });
    parser.addPositionalArgument(QStringLiteral("OUT.pt"), QStringLiteral("The file to write."));
    parser.addPositionalArgument(
        QStringLiteral("INPUT[:WEIGHT]"),
        QStringLiteral("Two or more hypernetworks of the same structure, each optionally with its "
                       "weight (a.pt:0.7). Without weights every input gets 1/N."),
        QStringLiteral("A.pt[:W] B.pt[:W] ..."));
}

void printResult(const HypernetworkSummary& summary, const std::vector<MergeInput>& inputs)
{
    double sum = 0.0;
    for (const MergeInput& input : inputs) {
        out() << "  " << QString::number(input.weight, 'g', 6) << " x "
              << QDir::toNativeSeparators(input.path) << '\n';
        sum += input.weight;
    }
    out() << "merged " << inputs.size() << " hypernetworks into '"
          << QDir::toNativeSeparators(summary.path) << "' (name '" << summary.config.name
          << "'): " << summary.parameterCount << " parameters\n";
    out().flush();
    if (std::abs(sum - 1.0) > 1e-6) {
        // Legitimate (extrapolation, scaling), but rarely what a user meant.
        err() << "hnstudio merge: note: the weights sum to " << QString::number(sum, 'g', 6)
              << ", not 1\n";
        err().flush();
    }
}

int merge(const QStringList& arguments)
{
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral(
        "Merges hypernetworks of the same structure (sizes, layer structure, activation, layer\n"
        "norm, dropout layers, residual layout) into one: every tensor of OUT is the weighted\n"
        "sum of the inputs' tensors, sum_i W_i * T_i. Give a weight to every input or to none:\n"
        "weights are used as given (they need not sum to 1); without weights each of the N\n"
        "inputs gets 1/N, an average. OUT is an ordinary webui .pt with step 0 and the first\n"
        "input's other metadata. Averaging weights is not averaging outputs: to apply several\n"
        "hypernetworks as they are, stack them in generate."));
    parser.addHelpOption();
    addOptions(parser);
    if (!parseArguments(parser, arguments)) {
        return kExitOk;
    }
    const QStringList positional = parser.positionalArguments();
    if (positional.size() < 3) {
        failUsage(QStringLiteral("give the output file and at least two hypernetworks: "
                                 "OUT.pt A.pt[:W] B.pt[:W] ..."));
    }
    const QString outPath = positional.front();
    if (QFileInfo::exists(outPath) && !parser.isSet(QStringLiteral("force"))) {
        failUsage(QStringLiteral("'%1' exists; use --force to overwrite it")
                      .arg(QDir::toNativeSeparators(outPath)));
    }
    const QString name = sanitizeHypernetworkName(parser.isSet(QStringLiteral("name"))
                                                      ? parser.value(QStringLiteral("name"))
                                                      : QFileInfo(outPath).completeBaseName());
    if (name.isEmpty()) {
        failUsage(QStringLiteral("--name: the name has no letters or digits"));
    }

    const std::vector<MergeInput> inputs = mergeInputs(positional.mid(1));
    printResult(mergeHypernetworkFiles(inputs, outPath, name), inputs);
    return kExitOk;
}

} // namespace

int runMerge(const QStringList& arguments)
{
    return runCommand(QStringLiteral("merge"), [&] { return merge(arguments); });
}

} // namespace studio::cli
