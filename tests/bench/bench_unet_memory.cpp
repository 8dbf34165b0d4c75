// Peak memory and time of one hypernetwork training step (forward + backward) through the SD1.5
// UNet for each memory-saving mode: plain attention, sliced attention at a few slice sizes,
// gradient checkpointing, and both. Random weights (UNetConfig's defaults are SD1.5's), the UNet
// frozen, one SD1-size hypernetwork (768, 320, 640, 1280; "1, 2, 1"; relu) in train mode.
//
//     bench_unet_memory [--size N] [--threads N] [--modes plain,sliced-256,...] [--seed N]
//                       [--no-control]
//
// Each mode runs in a fresh child process (this program re-executed with --child), so one mode's
// allocations never hide in another's peak. The child resets the kernel's peak-RSS mark
// (VmHWM) once the model is built and reports how far the step pushed it. It also saves the
// hypernetwork's gradients, which the parent compares with plain's: the numbers are only worth
// something when every mode computes the same step. A control run (plain with another thread
// count) shows how far float32 rounding alone moves those gradients.

#include "ProcessMemory.h"

#include "core/Error.h"
#include "core/diffusion/UNet.h"
#include "core/hypernetwork/Hypernetwork.h"
#include "core/hypernetwork/HypernetworkConfig.h"
#include "core/io/SafeTensors.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/utils.h>

#include <QElapsedTimer>
#include <QString>
#include <QStringList>
#include <QTemporaryDir>

#include <malloc.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

using namespace studio;

namespace {

constexpr int kDefaultLatentSize = 64; // 512 px
constexpr double kTimestep = 500.0;
constexpr double kGradientTolerance = 1e-4;
constexpr char kDefaultModes[] =
    "plain,sliced-auto,sliced-1024,sliced-256,checkpoint,checkpoint+sliced-auto";

struct Mode
{
    QString name;
    AttentionKind attention = AttentionKind::Plain;
    int64_t sliceSize = 0;
    bool checkpointing = false;
};

struct Options
{
    int size = kDefaultLatentSize;
    int threads = 0; // 0: LibTorch's default
    uint64_t seed = 1;
    QStringList modes = QString::fromLatin1(kDefaultModes).split(QLatin1Char(','));
    bool control = true; // also run plain with another thread count
    QString childMode;   // set in a child process
    QString gradientPath;
};

// --- process memory -------------------------------------------------------------------------

// --- modes ----------------------------------------------------------------------------------

// "plain", "sliced-auto", "sliced-256", "checkpoint", "checkpoint+sliced-256".
std::optional<Mode> parseMode(const QString& name)
{
    Mode mode;
    mode.name = name;
    QString rest = name;
    if (rest.startsWith(QLatin1String("checkpoint"))) {
        mode.checkpointing = true;
        rest = rest.mid(10);
        if (rest.isEmpty()) {
            return mode;
        }
        if (!rest.startsWith(QLatin1Char('+'))) {
            return std::nullopt;
        }
        rest = rest.mid(1);
    }
    if (rest == QLatin1String("plain")) {
        return mode;
    }
    if (!rest.startsWith(QLatin1String("sliced-"))) {
        return std::nullopt;
    }
    mode.attention = AttentionKind::Sliced;
    const QString size = rest.mid(7);
    bool ok = true;
    mode.sliceSize = size == QLatin1String("auto") ? 0 : size.toLongLong(&ok);
    if (!ok || mode.sliceSize < 0) {
        return std::nullopt;
    }
    return mode;
}

bool parseOptions(int argc, char** argv, Options& options)
{
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const bool hasValue = i + 1 < argc;
        if (arg == "--size" && hasValue) {
            options.size = std::atoi(argv[++i]);
        } else if (arg == "--threads" && hasValue) {
            options.threads = std::atoi(argv[++i]);
        } else if (arg == "--seed" && hasValue) {
            options.seed = std::strtoull(argv[++i], nullptr, 10);
        } else if (arg == "--modes" && hasValue) {
            options.modes = QString::fromLocal8Bit(argv[++i]).split(QLatin1Char(','));
        } else if (arg == "--no-control") {
            options.control = false;
        } else if (arg == "--child" && hasValue) {
            options.childMode = QString::fromLocal8Bit(argv[++i]);
        } else if (arg == "--gradient-out" && hasValue) {
            options.gradientPath = QString::fromLocal8Bit(argv[++i]);
        } else {
            return false;
        }
    }
    return options.size >= 8 && options.threads >= 0;
}

// --- child: one training step ---------------------------------------------------------------

HypernetworkConfig sd1HypernetworkConfig(uint64_t seed)
{
    HypernetworkConfig config;
    config.name = QStringLiteral("bench");
    config.sizes = {768, 320, 640, 1280};
    config.layerStructure = parseNumberList(QStringLiteral("1, 2, 1"), QStringLiteral("layers"));
    config.activation = QStringLiteral("relu");
    config.initSeed = seed;
    return config;
}

void saveGradients(const Hypernetwork& hypernetwork, const at::Tensor& loss, const QString& path)
{
    std::vector<std::pair<QString, at::Tensor>> tensors;
    tensors.emplace_back(QStringLiteral("loss"), loss.detach().reshape({1}));
    const std::vector<at::Tensor> parameters = hypernetwork.parameters();
    for (size_t i = 0; i < parameters.size(); ++i) {
        // The modules for widths 320/640/1280 never see an SD1 context, so they get no grad.
        if (parameters[i].grad().defined()) {
            tensors.emplace_back(QStringLiteral("grad.%1").arg(i), parameters[i].grad());
        }
    }
    io::writeSafeTensors(path, tensors);
}

double weightMiB(const torch::nn::Module& module)
{
    double bytes = 0.0;
    for (const at::Tensor& parameter : module.parameters()) {
        bytes += static_cast<double>(parameter.nbytes());
    }
    return bytes / (1024.0 * 1024.0);
}

int runChild(const Options& options, const Mode& mode)
{
    torch::manual_seed(options.seed);
    UNetModel unet{UNetConfig{}};
    for (at::Tensor& parameter : unet->parameters()) {
        parameter.requires_grad_(false);
    }
    Hypernetwork hypernetwork = Hypernetwork::create(sd1HypernetworkConfig(options.seed));
    hypernetwork.train(true);

    UNetRuntime& runtime = unet->runtime();
    runtime.hypernetworks = {&hypernetwork};
    runtime.attention = mode.attention;
    runtime.sliceSize = mode.sliceSize;
    runtime.gradientCheckpointing = mode.checkpointing;

    const at::Tensor x = at::randn({1, 4, options.size, options.size});
    const at::Tensor timesteps = at::full({1}, kTimestep);
    const at::Tensor context = at::randn({1, 77, 768});

    // Measure from here: free heap pages left over from building go back first.
    malloc_trim(0);
    const bool reset = bench::resetPeakRss();
    const double baseline = reset ? bench::statusMiB("VmRSS") : bench::statusMiB("VmHWM");

    QElapsedTimer timer;
    timer.start();
    const at::Tensor loss = unet->forward(x, timesteps, context).square().mean();
    const double forwardSeconds = timer.nsecsElapsed() / 1e9;
    timer.restart();
    loss.backward();
    const double backwardSeconds = timer.nsecsElapsed() / 1e9;
    const double peak = bench::statusMiB("VmHWM");

    saveGradients(hypernetwork, loss, options.gradientPath);
    std::printf("RESULT %.3f %.3f %.1f %.1f %d %.9g %.1f %d\n", forwardSeconds, backwardSeconds,
                baseline, peak, reset ? 1 : 0, loss.item<double>(), weightMiB(*unet),
                at::get_num_threads());
    return 0;
}

// --- parent: run the modes, compare, print --------------------------------------------------

struct ModeResult
{
    Mode mode;
    int requestedThreads = 0; // 0: LibTorch's default
    bool control = false;     // plain again with another thread count: the float32 noise floor
    bool ran = false;
    double forwardSeconds = 0.0;
    double backwardSeconds = 0.0;
    double baselineMiB = 0.0;
    double peakMiB = 0.0;
    bool peakWasReset = true;
    double loss = 0.0;
    double weightMiB = 0.0;
    int threads = 0;
    QString gradientPath;
    double gradientError = -1.0; // relative L2 error of all gradients against plain's
    double lossError = -1.0;
    bool gradientsMatch = false;

    double growthMiB() const { return peakMiB - baselineMiB; }
    QString label() const
    {
        return control ? QStringLiteral("plain, %1 threads").arg(requestedThreads) : mode.name;
    }
};

// Runs `result.mode` in a child process and fills in what it reported.
void runMode(const Options& options, const QString& directory, ModeResult& result)
{
    result.gradientPath = QStringLiteral("%1/grad-%2-%3.safetensors")
                              .arg(directory, result.mode.name)
                              .arg(result.requestedThreads);
    const std::string command =
        "'" + bench::selfExecutable() + "' --child '" + result.mode.name.toStdString() +
        "' --size " + std::to_string(options.size) + " --threads " +
        std::to_string(result.requestedThreads) + " --seed " + std::to_string(options.seed) +
        " --gradient-out '" + result.gradientPath.toStdString() + "'";

    std::fprintf(stderr, "running %s ...\n", qPrintable(result.label()));
    FILE* child = popen(command.c_str(), "r");
    if (!child) {
        return;
    }
    char line[512];
    while (std::fgets(line, sizeof(line), child)) {
        int reset = 1;
        if (std::sscanf(line, "RESULT %lf %lf %lf %lf %d %lf %lf %d", &result.forwardSeconds,
                        &result.backwardSeconds, &result.baselineMiB, &result.peakMiB, &reset,
                        &result.loss, &result.weightMiB, &result.threads) == 8) {
            result.ran = true;
            result.peakWasReset = reset != 0;
        }
    }
    result.ran = pclose(child) == 0 && result.ran;
}

// Relative L2 error over all gradients together (single near-zero tensors would make a
// per-tensor error meaningless) and the loss's relative error.
void compareGradients(const ModeResult& plain, ModeResult& result)
{
    const io::SafeTensorsFile expected = io::SafeTensorsFile::open(plain.gradientPath);
    const io::SafeTensorsFile actual = io::SafeTensorsFile::open(result.gradientPath);
    if (expected.names() != actual.names()) {
        result.gradientsMatch = false;
        return;
    }

    double differenceSquared = 0.0;
    double referenceSquared = 0.0;
    for (const QString& name : expected.names()) {
        if (name == QLatin1String("loss")) {
            continue;
        }
        const at::Tensor reference = expected.tensor(name).to(at::kDouble);
        const at::Tensor difference = actual.tensor(name).to(at::kDouble) - reference;
        differenceSquared += difference.square().sum().item<double>();
        referenceSquared += reference.square().sum().item<double>();
    }
    result.gradientError = std::sqrt(differenceSquared / std::max(referenceSquared, 1e-300));
    result.lossError = std::abs(result.loss - plain.loss) / std::abs(plain.loss);
    result.gradientsMatch = result.gradientError <= kGradientTolerance &&
                            result.lossError <= kGradientTolerance && referenceSquared > 0.0;
}

void printRow(const ModeResult& result, const ModeResult& plain)
{
    if (!result.ran) {
        std::printf("%-24s  FAILED (the child process did not finish)\n",
                    qPrintable(result.label()));
        return;
    }
    QString saving = QStringLiteral("-");
    QString lossError = QStringLiteral("-");
    QString gradientError = QStringLiteral("-");
    QString check = QStringLiteral("reference");
    if (&result != &plain) {
        lossError = QString::number(result.lossError, 'e', 1);
        gradientError = QString::number(result.gradientError, 'e', 1);
        check = result.gradientsMatch ? QStringLiteral("PASS") : QStringLiteral("FAIL");
    }
    if (&result != &plain && !result.control) {
        const double saved = plain.growthMiB() - result.growthMiB();
        saving = QStringLiteral("%1 (%2%)")
                     .arg(saved, 0, 'f', 0)
                     .arg(100.0 * saved / plain.growthMiB(), 0, 'f', 0);
    }
    if (result.control) {
        check = QStringLiteral("(float32 noise floor)");
    }
    std::printf("%-24s %7.1f %7.1f %7.1f %9.0f %12s %9s %9s %s%s\n", qPrintable(result.label()),
                result.forwardSeconds, result.backwardSeconds,
                result.forwardSeconds + result.backwardSeconds, result.growthMiB(),
                qPrintable(saving), qPrintable(lossError), qPrintable(gradientError),
                qPrintable(check),
                result.peakWasReset ? "" : " (VmHWM not reset: peak may be understated)");
}

void printTable(const std::vector<ModeResult>& results, const Options& options)
{
    const ModeResult& plain = results.front();
    std::printf("\nSD1.5 UNet + hypernetwork training step, batch 1, latents %dx%d (%d px), "
                "%d threads\n\n",
                options.size, options.size, options.size * 8, plain.threads);
    std::printf("%-24s %7s %7s %7s %9s %12s %9s %9s %s\n", "mode", "fwd s", "bwd s", "total s",
                "peak MiB", "saving MiB", "loss err", "grad err", "check");
    for (const ModeResult& result : results) {
        printRow(result, plain);
    }
    std::printf("\nRSS after building the model: %.0f MiB, of which the UNet's float32 weights "
                "are %.0f MiB\n",
                plain.baselineMiB, plain.weightMiB);
}

void printExplanation()
{
    std::printf(
        "\n"
        "Peak MiB is how far one forward + backward pass raised the process's peak RSS above\n"
        "its RSS once the model was built. Plain attention materialises the [heads, N, N]\n"
        "score matrix of every self-attention layer (N = latent pixels; 4096 at 64x64, i.e.\n"
        "512 MiB per layer in float32) and autograd keeps each layer's softmax for the\n"
        "backward pass. Sliced attention computes the scores a block of queries at a time,\n"
        "which bounds the temporary buffers, but while gradients are recorded the softmax of\n"
        "every slice is still kept for the backward pass, so in training it only saves the\n"
        "transient part. Gradient checkpointing keeps only each UNet block's inputs and runs\n"
        "the block again in the backward pass (about one extra forward pass of time), so the\n"
        "activations of only one block are alive at a time; combined with slicing, that\n"
        "block's attention is sliced too. 'grad err' is the relative L2 difference of the\n"
        "hypernetwork's gradients from plain's, 'loss err' the loss's relative difference;\n"
        "PASS means both are within %g. The control row runs plain again with another\n"
        "thread count: the same computation summed in another order, so its error is what\n"
        "float32 rounding alone gives for this network and loss.\n",
        kGradientTolerance);
}

int runParent(const Options& options)
{
    std::vector<ModeResult> results;
    for (const QString& name : options.modes) {
        const std::optional<Mode> mode = parseMode(name.trimmed());
        if (!mode) {
            std::fprintf(stderr, "unknown mode '%s'\n", qPrintable(name));
            return 2;
        }
        results.push_back(ModeResult{*mode, options.threads});
    }
    if (results.front().mode.name != QLatin1String("plain")) {
        std::fprintf(stderr, "the first mode must be 'plain', the reference of the others\n");
        return 2;
    }
    QTemporaryDir directory;
    if (!directory.isValid()) {
        std::fprintf(stderr, "cannot create a temporary directory\n");
        return 1;
    }

    for (ModeResult& result : results) {
        runMode(options, directory.path(), result);
    }
    if (!results.front().ran) {
        std::fprintf(stderr, "the plain run failed: nothing to compare with\n");
        return 1;
    }
    if (options.control) {
        ModeResult control{results.front().mode, results.front().threads == 1 ? 2 : 1, true};
        runMode(options, directory.path(), control);
        results.push_back(control);
    }

    bool allMatch = true;
    for (size_t i = 1; i < results.size(); ++i) {
        if (results[i].ran) {
            compareGradients(results.front(), results[i]);
        }
        allMatch =
            allMatch && (results[i].control || (results[i].ran && results[i].gradientsMatch));
    }
    printTable(results, options);
    printExplanation();
    return allMatch ? 0 : 1;
}

} // namespace

int main(int argc, char** argv)
{
    Options options;
    if (!parseOptions(argc, argv, options)) {
        std::fprintf(stderr,
                     "usage: %s [--size LATENT_SIDE] [--threads N] [--seed N] [--no-control]\n"
                     "       [--modes %s]\n",
                     argv[0], kDefaultModes);
        return 2;
    }

    try {
        if (options.childMode.isEmpty()) {
            return runParent(options);
        }
        if (options.threads > 0) {
            at::set_num_threads(options.threads);
        }
        const std::optional<Mode> mode = parseMode(options.childMode);
        return mode ? runChild(options, *mode) : 2;
    } catch (const Error& error) {
        std::fprintf(stderr, "error: %s\n", error.what());
        return 1;
    }
}
