// hnstudio demo-model: trains the built-in demo's tiny base model (core/demo/DemoModelTrainer.h)
// on procedurally drawn plain scenes and writes demo.safetensors, demo.yaml, vocab.json and
// merges.txt into OUT_DIR.

#include "app/cli/CliSupport.h"
#include "app/cli/Commands.h"

#include "core/demo/DemoModelTrainer.h"

#include <ATen/Parallel.h>

#include <QDir>

namespace studio::cli {

namespace {

QList<QCommandLineOption> demoModelOptions()
{
    return {
        {QStringLiteral("steps"),
         QStringLiteral("Training steps of each stage (VAE, then UNet with the text encoder). "
                        "Default: 1500 for the VAE and 4000 for the UNet."),
         QStringLiteral("N")},
        {QStringLiteral("vae-steps"), QStringLiteral("VAE steps; overrides --steps."),
         QStringLiteral("N")},
        {QStringLiteral("unet-steps"), QStringLiteral("UNet steps; overrides --steps."),
         QStringLiteral("N")},
        {QStringLiteral("seed"),
         QStringLiteral("Seed of the weights, scenes and noise: the same seed and thread count "
                        "give the same file. Default: 0."),
         QStringLiteral("S"), QStringLiteral("0")},
        {QStringLiteral("threads"),
         QStringLiteral("CPU threads LibTorch uses. Default: LibTorch's choice."),
         QStringLiteral("N"), QStringLiteral("0")},
        {QStringLiteral("size"),
         QStringLiteral("Side of the training pictures, a multiple of 16. Default: 64."),
         QStringLiteral("N"), QStringLiteral("64")},
        {QStringLiteral("vae-crop"),
         QStringLiteral("Side of the random windows the VAE trains on, a multiple of 8. "
                        "Default: half of --size."),
         QStringLiteral("N"), QStringLiteral("0")},
        {QStringLiteral("batch"), QStringLiteral("Pictures per step. Default: 16."),
         QStringLiteral("N"), QStringLiteral("16")},
        {QStringLiteral("log-every"), QStringLiteral("Steps between loss lines. Default: 50."),
         QStringLiteral("N"), QStringLiteral("50")},
    };
}

int positiveOption(const QCommandLineParser& parser, const QString& name, qint64 maximum)
{
    const qint64 value = integerOption(parser, name);
    if (value < 1 || value > maximum) {
        failUsage(QStringLiteral("--%1: give 1 to %2").arg(name).arg(maximum));
    }
    return int(value);
}

int demoModel(const QStringList& arguments)
{
    QCommandLineParser parser;
    parser.setApplicationDescription(
        QStringLiteral("Trains the built-in demo's tiny Stable Diffusion base model on drawn "
                       "shapes and writes demo.safetensors, demo.yaml, vocab.json and "
                       "merges.txt. Losses go to stderr."));
    parser.addHelpOption();
    parser.addOptions(demoModelOptions());
    parser.addPositionalArgument(QStringLiteral("OUT_DIR"),
                                 QStringLiteral("The folder to write the model to."));
    if (!parseArguments(parser, arguments)) {
        return kExitOk;
    }
    const QStringList positional = parser.positionalArguments();
    if (positional.size() != 1) {
        failUsage(QStringLiteral("give exactly one output folder"));
    }
    demo::DemoModelOptions options;
    constexpr qint64 kMaxSteps = 10'000'000;
    if (parser.isSet(QStringLiteral("steps"))) {
        options.vaeSteps = positiveOption(parser, QStringLiteral("steps"), kMaxSteps);
        options.unetSteps = options.vaeSteps;
    }
    if (parser.isSet(QStringLiteral("vae-steps"))) {
        options.vaeSteps = positiveOption(parser, QStringLiteral("vae-steps"), kMaxSteps);
    }
    if (parser.isSet(QStringLiteral("unet-steps"))) {
        options.unetSteps = positiveOption(parser, QStringLiteral("unet-steps"), kMaxSteps);
    }
    const qint64 seed = integerOption(parser, QStringLiteral("seed"));
    if (seed < 0) {
        failUsage(QStringLiteral("--seed: give 0 or more"));
    }
    options.seed = uint64_t(seed);
    const qint64 size = integerOption(parser, QStringLiteral("size"));
    if (size < 16 || size > 512 || size % 16 != 0) {
        failUsage(QStringLiteral("--size: give a multiple of 16 from 16 to 512"));
    }
    options.size = int(size);
    const qint64 crop = integerOption(parser, QStringLiteral("vae-crop"));
    if (crop != 0 && (crop < 8 || crop > size || crop % 8 != 0)) {
        failUsage(QStringLiteral("--vae-crop: give a multiple of 8 from 8 to --size"));
    }
    options.vaeCropSize = int(crop);
    options.batchSize = positiveOption(parser, QStringLiteral("batch"), 1024);
    options.logEvery = positiveOption(parser, QStringLiteral("log-every"), kMaxSteps);
    const qint64 threads = integerOption(parser, QStringLiteral("threads"));
    if (threads < 0 || threads > 1024) {
        failUsage(QStringLiteral("--threads: give 1 to 1024 (0: LibTorch's choice)"));
    }
    if (threads > 0) {
        at::set_num_threads(int(threads));
    }
    options.log = [](const QString& line) {
        err() << line << '\n';
        err().flush();
    };
    const demo::DemoModelResult result = demo::trainDemoModel(positional.front(), options);
    out() << "wrote '" << QDir::toNativeSeparators(result.checkpointPath) << "' ("
          << result.checkpointBytes << " bytes), its YAML and vocabulary; vae loss "
          << demo::meanLoss(result.vaeLosses, 50, false) << " -> "
          << demo::meanLoss(result.vaeLosses, 50, true) << ", unet loss "
          << demo::meanLoss(result.unetLosses, 50, false) << " -> "
          << demo::meanLoss(result.unetLosses, 50, true) << '\n';
    out().flush();
    return kExitOk;
}

} // namespace

int runDemoModel(const QStringList& arguments)
{
    return runCommand(QStringLiteral("demo-model"), [&] { return demoModel(arguments); });
}

} // namespace studio::cli
