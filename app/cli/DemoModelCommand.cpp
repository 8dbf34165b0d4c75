// hnstudio demo-model: trains the built-in demo's tiny base model (core/demo/DemoModelTrainer.h)
// on procedurally drawn plain scenes and writes demo.safetensors, demo.yaml, vocab.json and
// merges.txt into OUT_DIR.

#include "app/cli/CliSupport.h"
#include "app/cli/Commands.h"

#include "core/demo/DemoModelTrainer.h"

#include <ATen/Parallel.h>

#include <QDir>

#include <limits>

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

// The training options of the command line; failUsage names the option that is out of range.
demo::DemoModelOptions optionsFrom(const QCommandLineParser& parser)
{
    constexpr qint64 kMaxSteps = 10'000'000;
    demo::DemoModelOptions options;
    if (parser.isSet(QStringLiteral("steps"))) {
        options.vaeSteps = int(integerOptionIn(parser, QStringLiteral("steps"), 1, kMaxSteps));
        options.unetSteps = options.vaeSteps;
    }
    if (parser.isSet(QStringLiteral("vae-steps"))) {
        options.vaeSteps = int(integerOptionIn(parser, QStringLiteral("vae-steps"), 1, kMaxSteps));
    }
    if (parser.isSet(QStringLiteral("unet-steps"))) {
        options.unetSteps =
            int(integerOptionIn(parser, QStringLiteral("unet-steps"), 1, kMaxSteps));
    }
    options.seed = uint64_t(
        integerOptionIn(parser, QStringLiteral("seed"), 0, std::numeric_limits<qint64>::max()));

    options.size = int(integerOptionIn(parser, QStringLiteral("size"), 16, 512));
    if (options.size % 16 != 0) {
        failUsage(QStringLiteral("--size: give a multiple of 16 from 16 to 512"));
    }
    options.vaeCropSize = int(integerOptionIn(parser, QStringLiteral("vae-crop"), 0, options.size));
    if (options.vaeCropSize != 0 && (options.vaeCropSize < 8 || options.vaeCropSize % 8 != 0)) {
        failUsage(QStringLiteral("--vae-crop: give a multiple of 8 from 8 to --size"));
    }

    options.batchSize = int(integerOptionIn(parser, QStringLiteral("batch"), 1, 1024));
    options.logEvery = int(integerOptionIn(parser, QStringLiteral("log-every"), 1, kMaxSteps));
    options.log = [](const QString& line) {
        err() << line << '\n';
        err().flush();
    };
    return options;
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
    const demo::DemoModelOptions options = optionsFrom(parser);
    const qint64 threads = integerOptionIn(parser, QStringLiteral("threads"), 0, 1024);
    if (threads > 0) {
        at::set_num_threads(int(threads));
    }

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
